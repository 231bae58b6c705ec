"""Fixtures of the segments tests: a drained job runner, an admin client."""
from __future__ import annotations

import pytest

from config.queue import in_process_runner
from tests.conftest import ADMIN_TOKEN


@pytest.fixture
def drain():
    """Wait for the in-process runner to finish every queued job (also when the test ends, before its database goes)."""
    def run() -> None:
        assert in_process_runner().drain(30), "background jobs did not finish"
    yield run
    in_process_runner().drain(30)


@pytest.fixture
def client(settings):
    """An HTTP client on the app, authorised as the bootstrap admin."""
    from fastapi.testclient import TestClient

    from siyu.app import create_app

    with TestClient(create_app()) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield c

