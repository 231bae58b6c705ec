"""Plain-mode forgery and safe-mode downgrade: the timestamp window, the nonce memory, safe mode only with a key."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from config.database import session_scope
from config.settings import get_settings
from tests.webhooks.conftest import fixture_text, inbox_rows
from webhooks.crypto import signature
from webhooks.inbox import inbox_scope
from webhooks.intake import request_time
from webhooks.models import WebhookNonce
from webhooks.replay import WINDOW

ROUTES = [("official_account", "/webhooks/official-account"), ("miniprogram", "/webhooks/miniprogram")]
T0 = 1_800_000_000  # the server's clock in these tests


def _rejected(source: str, reason: str) -> float:
    return REGISTRY.get_sample_value("siyu_webhook_rejected_total", {"source": source, "reason": reason}) or 0.0


def _creds(source: str):
    from bot.credentials import mp_credentials, oa_credentials

    return (oa_credentials if source == "official_account" else mp_credentials)(get_settings())


def _signed(source: str, timestamp: int | str, nonce: str = "4242") -> dict:
    ts = str(timestamp)
    return {"signature": signature(_creds(source).token, ts, nonce), "timestamp": ts, "nonce": nonce}


def _text(source: str, msg_id: int, content: str = "你好") -> str:
    name = "official_account" if source == "official_account" else "miniprogram"
    return (fixture_text(name, "text.xml").replace("请问门店几点营业", content).replace("拼团怎么参加", content)
            .replace("23456789012345678", str(msg_id)).replace("33456789012345678", str(msg_id)))


@pytest.fixture
def at_t0(client):
    """The app's clock stopped at T0."""
    client.app.dependency_overrides[request_time] = lambda: float(T0)
    yield T0
    client.app.dependency_overrides.clear()


def _nonce_rows() -> list[WebhookNonce]:
    with inbox_scope() as s:
        return list(s.scalars(select(WebhookNonce)))


@pytest.mark.parametrize("source,path", ROUTES)
@pytest.mark.parametrize("offset", [-WINDOW - 1, WINDOW + 1])
def test_a_plain_request_outside_the_window_is_403_and_stores_nothing(plain_apps, client, enqueued, at_t0,
                                                                      source, path, offset):
    before = _rejected(source, "timestamp")
    # given a correctly signed plain-mode message whose timestamp is 301 s away from the server's clock
    r = client.post(path, params=_signed(source, T0 + offset), content=_text(source, 1))
    # then it is refused as stale, counted, and nothing is stored
    assert r.status_code == 403
    assert inbox_rows() == [] and enqueued == [] and _nonce_rows() == []
    assert _rejected(source, "timestamp") == before + 1


@pytest.mark.parametrize("source,path", ROUTES)
def test_a_plain_request_at_the_edge_of_the_window_is_taken_and_a_garbled_timestamp_is_not(
        plain_apps, client, enqueued, at_t0, source, path):
    # given messages signed 300 s before and after the server's clock, and one whose timestamp is not a number
    early = client.post(path, params=_signed(source, T0 - WINDOW, "a"), content=_text(source, 1))
    late = client.post(path, params=_signed(source, T0 + WINDOW, "b"), content=_text(source, 2))
    garbled = client.post(path, params=_signed(source, f"{T0}.5", "c"), content=_text(source, 3))
    # then the two at the edge are stored and the garbled one is refused
    assert (early.status_code, late.status_code, garbled.status_code) == (200, 200, 403)
    assert len(inbox_rows()) == 2


@pytest.mark.parametrize("source,path", ROUTES)
def test_a_url_check_outside_the_window_is_403(client, at_t0, source, path):
    # given a URL check signed 301 s ago, when it arrives, then it is refused; a fresh one echoes
    stale = client.get(path, params={**_signed(source, T0 - WINDOW - 1), "echostr": "hi"})
    fresh = client.get(path, params={**_signed(source, T0), "echostr": "hi"})
    assert stale.status_code == 403 and (fresh.status_code, fresh.text) == (200, "hi")


@pytest.mark.parametrize("source,path", ROUTES)
def test_a_logged_query_string_carries_its_own_body_again_but_no_other(plain_apps, client, enqueued, at_t0,
                                                                     source, path):
    query = _signed(source, T0)
    before = _rejected(source, "replay")
    # given a plain-mode message delivered with query string Q
    first = client.post(path, params=query, content=_text(source, 1))
    # when Tencent retries it with the same Q and the same body
    retry = client.post(path, params=query, content=_text(source, 1))
    # and when someone who read Q in a log posts another body with it, within the window
    forged = client.post(path, params=query, content=_text(source, 2, "退款到这个账户"))
    # then the retry is a harmless duplicate and the forgery is refused: one row, enqueued once, counted
    assert (first.status_code, retry.status_code, forged.status_code) == (200, 200, 403)
    [row] = inbox_rows()
    assert row.data["Content"] == "你好" and len(enqueued) == 1
    assert _rejected(source, "replay") == before + 1


def test_the_nonce_table_is_written_with_the_inbox_row_and_forgotten_after_the_window(plain_apps, client,
                                                                                      enqueued, at_t0):
    from webhooks.replay import purge_nonces

    # given a plain-mode message taken at T0 (no Redis configured)
    assert client.post("/webhooks/miniprogram", params=_signed("miniprogram", T0), content=_text("miniprogram", 1)
                       ).status_code == 200
    # then its nonce is remembered until the timestamp is no longer fresh
    [nonce] = _nonce_rows()
    assert (nonce.source, nonce.nonce, nonce.timestamp) == ("miniprogram", "4242", T0)
    assert nonce.expires_at == datetime.fromtimestamp(T0 + WINDOW + 1, timezone.utc)
    # and when the purge runs while a request with that timestamp could still be taken, the nonce is kept
    with inbox_scope() as s:
        assert purge_nonces(s, datetime.fromtimestamp(T0 + WINDOW, timezone.utc)) == 0
    # and once no such request can be, it is forgotten
    with inbox_scope() as s:
        assert purge_nonces(s, datetime.fromtimestamp(T0 + WINDOW + 1, timezone.utc)) == 1
    assert _nonce_rows() == []


def test_the_inbox_sweeper_purges_expired_nonces(settings):
    from webhooks.jobs import sweep_inbox

    # given a nonce whose window ended an hour ago and one still fresh
    now = time.time()
    with inbox_scope() as s:
        for nonce, expires in (("old", now - 3600), ("new", now + 200)):
            s.add(WebhookNonce(source="miniprogram", nonce=nonce, timestamp=int(expires) - WINDOW - 1,
                               body_sha256="0" * 64, expires_at=datetime.fromtimestamp(expires, timezone.utc)))
    # when the sweeper runs, then only the fresh one is left
    sweep_inbox()
    assert [n.nonce for n in _nonce_rows()] == ["new"]


def test_a_refused_forgery_leaves_the_nonce_as_the_first_delivery_wrote_it(plain_apps, client, enqueued, at_t0):
    query = _signed("official_account", T0)
    client.post("/webhooks/official-account", params=query, content=_text("official_account", 1))
    [first] = _nonce_rows()
    # given a forgery refused with the same nonce, when the genuine retry comes after it
    assert client.post("/webhooks/official-account", params=query, content=_text("official_account", 2)
                       ).status_code == 403
    retry = client.post("/webhooks/official-account", params=query, content=_text("official_account", 1))
    # then the retry is still the harmless duplicate: the forgery overwrote nothing
    assert retry.status_code == 200 and [n.body_sha256 for n in _nonce_rows()] == [first.body_sha256]


def test_the_nonce_memory_is_redis_when_configured(redis_url, plain_apps, client, enqueued, at_t0, monkeypatch):
    from redis import Redis

    # given SIYU_REDIS_URL set
    monkeypatch.setenv("SIYU_REDIS_URL", redis_url)
    get_settings.cache_clear()
    query = _signed("official_account", T0)
    # when a message, its retry and a forgery with the same query string arrive
    codes = [client.post("/webhooks/official-account", params=query, content=_text("official_account", n)
                         ).status_code for n in (1, 1, 2)]
    # then the forgery is refused, the nonce lives in Redis (until the timestamp is stale) and not in the table
    assert codes == [200, 200, 403]
    key = f"siyu:nonce:official_account:4242:{T0}"
    redis = Redis.from_url(redis_url)
    assert redis.get(key) is not None and 0 < redis.ttl(key) <= WINDOW + 1
    assert _nonce_rows() == [] and len(inbox_rows()) == 1


def test_while_redis_is_down_the_nonce_is_remembered_in_the_database(plain_apps, client, enqueued, at_t0,
                                                                     monkeypatch):
    # given SIYU_REDIS_URL pointing at a Redis that does not answer
    monkeypatch.setenv("SIYU_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    query = _signed("official_account", T0)
    # when a message and a forgery with its query string arrive
    first = client.post("/webhooks/official-account", params=query, content=_text("official_account", 1))
    forged = client.post("/webhooks/official-account", params=query, content=_text("official_account", 2))
    # then the message is stored, its nonce remembered in the table, and the forgery refused
    assert (first.status_code, forged.status_code) == (200, 403)
    assert len(_nonce_rows()) == 1 and len(inbox_rows()) == 1


@pytest.mark.postgres
def test_concurrent_forgeries_with_one_nonce_let_exactly_one_body_in(pg_url, monkeypatch, enqueued):
    from fastapi import HTTPException

    from webhooks.intake import accept
    from webhooks.replay import delivery

    monkeypatch.setenv("SIYU_DATABASE_URL", pg_url)
    monkeypatch.delenv("SIYU_REDIS_URL", raising=False)  # the table is the memory under test
    get_settings.cache_clear()
    # given eight deliveries carrying one (nonce, timestamp) and eight different bodies, started at once
    barrier, outcomes = threading.Barrier(8), []

    def deliver(n: int) -> None:
        text = _text("miniprogram", n)
        barrier.wait()
        try:
            accept("miniprogram", text, {"MsgId": str(n)}, seen=delivery("miniprogram", "4242", T0, text), now=T0)
            outcomes.append(200)
        except HTTPException as exc:  # what reject() makes of a ReplayedNonce
            outcomes.append(exc.status_code)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    get_settings.cache_clear()
    # then exactly one is stored and seven are refused with 403; one nonce row, one inbox row
    assert sorted(outcomes) == [200] + [403] * 7
    assert len(_nonce_rows_at(pg_url)) == 1 and _inbox_count_at(pg_url) == 1


def _nonce_rows_at(url: str) -> list[WebhookNonce]:
    from config.database import engine_for

    with session_scope(engine_for(url)) as s:
        return list(s.scalars(select(WebhookNonce)))


def _inbox_count_at(url: str) -> int:
    from sqlalchemy import func

    from config.database import engine_for
    from webhooks.models import InboxEvent

    with session_scope(engine_for(url)) as s:
        return s.scalar(select(func.count()).select_from(InboxEvent))


# -- safe mode only, once a key is configured -----------------------------------------------------------------
@pytest.mark.parametrize("source,path", ROUTES)
def test_a_plain_request_to_a_channel_with_a_key_is_403_and_stores_nothing(client, enqueued, source, path):
    assert _creds(source).aes_key  # the sandbox's account and mini-program carry an EncodingAESKey
    before = _rejected(source, "plain_mode")
    # given a correctly signed, fresh plain-mode request (no encrypt_type, no msg_signature)
    r = client.post(path, params=_signed(source, int(time.time())), content=_text(source, 1))
    # then it is refused: with a key configured only safe mode is taken
    assert r.status_code == 403
    assert inbox_rows() == [] and enqueued == [] and _nonce_rows() == []
    assert _rejected(source, "plain_mode") == before + 1


@pytest.mark.parametrize("source,path", ROUTES)
def test_a_safe_mode_request_outside_the_window_is_403(client, enqueued, at_t0, source, path):
    from webhooks.crypto import encrypt_reply, parse_xml

    creds = _creds(source)
    # given a well-signed safe-mode message whose timestamp is 301 s old
    ts, nonce = str(T0 - WINDOW - 1), "77"
    sealed = parse_xml(encrypt_reply("app", creds.token, creds.aes_key, creds.app_id, _text(source, 1), nonce, ts))
    body = f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
    q = {**_signed(source, ts, nonce), "encrypt_type": "aes", "msg_signature": sealed["MsgSignature"]}
    # when it arrives, then it is refused and nothing is stored
    assert client.post(path, params=q, content=body).status_code == 403
    assert inbox_rows() == []
