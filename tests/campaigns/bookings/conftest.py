"""Fixtures of the bookings tests: the app over the served sandbox, and a small world built through the APIs."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.campaigns.bookings.helpers import build_world


@pytest.fixture
def client(sandbox):
    """A TestClient of the whole app."""
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def tokens(client):
    """The world's admin-API tokens per role."""
    return build_world(client)
