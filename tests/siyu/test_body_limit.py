"""SIYU_MAX_BODY_BYTES: a body over the limit answers 413 {"detail": …} on every route, before it is read whole."""
import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from config.settings import SettingsError, get_settings, load_settings
from siyu.body_limit import BodyLimit
from tests.conftest import ADMIN_TOKEN

ROUTES = ["/webhooks/wecom", "/webhooks/official-account", "/webhooks/miniprogram", "/api/v1/stores"]


@pytest.fixture
def small_limit(settings, monkeypatch):
    """Settings with a 1,000-byte body limit."""
    monkeypatch.setenv("SIYU_MAX_BODY_BYTES", "1000")
    get_settings.cache_clear()
    return get_settings()


def _inbox_count() -> int:
    from sqlalchemy import func, select

    from config.database import session_scope
    from webhooks.models import InboxEvent

    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent))


def test_the_default_limit_is_one_mebibyte_and_a_bad_value_stops_start_up(settings):
    # given no SIYU_MAX_BODY_BYTES, then the limit is 1 MiB; and a limit of 0 is refused naming the variable
    assert settings.max_body_bytes == 1024 * 1024
    with pytest.raises(SettingsError, match="SIYU_MAX_BODY_BYTES"):
        load_settings(max_body_bytes=0)


@pytest.mark.parametrize("path", ROUTES)
def test_a_declared_length_over_the_limit_is_413_on_every_route(small_limit, path):
    from siyu.app import create_app

    # given a 1,000-byte limit, when a 1,001-byte body is posted (Content-Length declared)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        r = c.post(path, content=b"<" * 1001, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        at_limit = c.post(path, content=b"<" * 1000, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    # then 413 with a {"detail"} body, and nothing is stored; a body of exactly the limit goes through
    assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
    assert at_limit.status_code not in (413, 500)
    assert _inbox_count() == 0


def test_a_chunked_body_over_the_limit_is_413(small_limit):
    from siyu.app import create_app

    # given a body of unknown length (chunked: no Content-Length), when it grows past the limit
    def chunks():
        for _ in range(30):
            yield b"A" * 100

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        r = c.post("/webhooks/wecom", content=chunks())
    # then 413 {"detail"} and nothing stored
    assert r.status_code == 413 and "detail" in r.json()
    assert _inbox_count() == 0


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit():
    # given the middleware with a 10-byte limit in front of an app that reads the whole body
    async def reader(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    pulled, sent = [], []

    async def receive():
        pulled.append(4)
        return {"type": "http.request", "body": b"x" * 4, "more_body": len(pulled) < 1000}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"transfer-encoding", b"chunked")]}
    # when a 4,000-byte body streams in 4-byte chunks
    asyncio.run(BodyLimit(reader, limit=10)(scope, receive, send))
    # then the answer is 413 after the third chunk (12 bytes), not after the whole body
    assert sent[0]["status"] == 413 and len(pulled) == 3
    assert json.loads(sent[1]["body"]) == {"detail": "request body larger than 10 bytes"}


def test_a_declared_length_over_the_limit_is_refused_before_the_app_reads_anything():
    # given the middleware with a 10-byte limit, when Content-Length says 11
    called, sent = [], []

    async def app(scope, receive, send):
        called.append(True)

    async def receive():
        raise AssertionError("the body must not be read")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"11")]}
    asyncio.run(BodyLimit(app, limit=10)(scope, receive, send))
    # then 413 is answered and neither the app nor the body was touched
    assert sent[0]["status"] == 413 and called == []
