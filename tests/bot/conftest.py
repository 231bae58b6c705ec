"""The sandbox served over real HTTP (uvicorn in a thread): wechatpy speaks `requests`, not ASGI."""
from __future__ import annotations

import os

import pytest

from bot.clients import reset_clients
from bot.sandbox.state import reset_state
from config.queue import in_process_runner
from config.settings import get_settings


@pytest.fixture
def sqlite_settings(tmp_path, monkeypatch):
    """Like the shared `settings` fixture, on SQLite only: for client tests where the database is incidental."""
    from config.database import engine_for
    from siyu.models import metadata

    url = f"sqlite:///{tmp_path}/siyu.db"
    metadata.create_all(engine_for(url))
    monkeypatch.setenv("SIYU_DATABASE_URL", url)
    monkeypatch.delenv("SIYU_REDIS_URL", raising=False)
    monkeypatch.setenv("SIYU_VAR_DIR", str(tmp_path / "var"))
    for name in list(os.environ):
        if name.startswith(("SIYU_WECOM_", "SIYU_OA_", "SIYU_MP_", "SIYU_PAY_")):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _point_at(server: str, monkeypatch):
    monkeypatch.setenv("SIYU_PUBLIC_URL", server)
    monkeypatch.setenv("SIYU_WECHAT_BACKOFF_BASE", "0.001")
    get_settings.cache_clear()
    reset_clients()
    return reset_state()


@pytest.fixture
def sandbox(sandbox_server, sqlite_settings, monkeypatch):
    """An empty sandbox state; settings (SQLite, embedded) and clients point at the served sandbox."""
    yield _point_at(sandbox_server, monkeypatch)
    in_process_runner().drain(30)  # jobs the test queued (segment re-checks of timeline events) use its database
    reset_clients()
    get_settings.cache_clear()
