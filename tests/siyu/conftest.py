"""Fixtures of the top floor's tests: the served sandbox."""
from __future__ import annotations

import pytest

from bot.clients import reset_clients
from bot.sandbox.state import reset_state
from config.queue import in_process_runner
from config.settings import get_settings


@pytest.fixture
def sandbox(settings, sandbox_server, monkeypatch):
    """An empty sandbox state; settings and clients point at the served sandbox."""
    monkeypatch.setenv("SIYU_PUBLIC_URL", sandbox_server)
    get_settings.cache_clear()
    reset_clients()
    yield reset_state()
    in_process_runner().drain(30)
    reset_clients()
