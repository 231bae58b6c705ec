"""Fixtures of the bookings tests: the app over the served sandbox, and a small world built through the APIs."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bot.clients import reset_clients
from bot.sandbox.state import reset_state
from config.queue import in_process_runner
from config.settings import get_settings
from tests.campaigns.bookings.helpers import build_world


@pytest.fixture
def sandbox(settings, sandbox_server, monkeypatch):
    """An empty sandbox state; settings and clients point at the served sandbox."""
    monkeypatch.setenv("SIYU_PUBLIC_URL", sandbox_server)
    monkeypatch.setenv("SIYU_WECHAT_BACKOFF_BASE", "0.001")
    get_settings.cache_clear()
    reset_clients()
    yield reset_state()
    in_process_runner().drain(30)
    reset_clients()
    get_settings.cache_clear()


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
