"""What every callback route shares: effective credentials, rejection, and storing under one transaction."""
from __future__ import annotations

import logging
import threading
import time

from fastapi import HTTPException, Request
from sqlalchemy.exc import DBAPIError

from bot.credentials import mp_credentials, oa_credentials, wecom_credentials
from config.settings import get_settings
from webhooks.crypto import BadPayload, BadSignature, WrongReceiver
from webhooks.group_store import store_at_once
from webhooks.inbox import INBOX_BUSY_TIMEOUT, InboxBusy, Stored, inbox_scope, store, storing_at_once
from webhooks.metrics import RECEIVED, REJECTED
from webhooks.replay import Delivery, remember

log = logging.getLogger(__name__)

_creds_lock = threading.Lock()
_creds_cache: dict[str, tuple[object, object]] = {}


def credentials(channel: str):
    """The effective credentials of `wecom`, `official_account` or `miniprogram` (cached per settings object)."""
    settings = get_settings()
    with _creds_lock:
        cached = _creds_cache.get(channel)
        if cached is not None and cached[0] is settings:
            return cached[1]
        build = {"wecom": wecom_credentials, "official_account": oa_credentials,
                 "miniprogram": mp_credentials}[channel]
        creds = build(settings)
        _creds_cache[channel] = (settings, creds)
        return creds


async def raw_body(request: Request) -> bytes:
    """FastAPI dependency: the request body exactly as sent (signatures cover these bytes)."""
    return await request.body()


async def request_time() -> float:
    """FastAPI dependency: now, in seconds (tests override it to move the replay window)."""
    return time.time()


def reject(source: str, exc: BadSignature | WrongReceiver | BadPayload) -> HTTPException:
    """The HTTP error of a refused callback (403 or 400, as the error says), counted by reason; nothing is stored."""
    REJECTED.labels(source, exc.reason).inc()
    log.warning("callback %s: refused (%s: %s)", source, exc.reason, exc)
    return HTTPException(exc.status_code, f"{exc.reason}: {exc}")


def accept(source: str, plaintext: str, data: dict, extra_jobs=(), *, seen: Delivery | None = None,
           now: float | None = None) -> Stored:
    """Store a verified callback under its content key and enqueue it once committed; 503 when the inbox is stuck.

    With `seen`, its nonce is remembered in the same transaction; a nonce reused for other content is refused
    (403) and nothing is stored.
    """
    try:
        if seen is None and storing_at_once():
            return store_at_once(source, plaintext, data, extra_jobs)
        with inbox_scope() as session:
            if seen is not None:
                remember(session, seen, time.time() if now is None else now)
            return store(session, source, plaintext, data, extra_jobs)
    except BadSignature as exc:
        raise reject(source, exc) from None
    except (DBAPIError, InboxBusy) as exc:
        # The inbox stayed locked past its short timeout, or could not be written (or refused the row: a fault of
        # ours, never of the content). Answering 503 at once lets Tencent deliver again; waiting longer would pass
        # its 5-second limit and be a retry anyway.
        RECEIVED.labels(source, "busy").inc()
        log.error("callback %s: not stored, inbox unavailable after %.0fs: %s", source, INBOX_BUSY_TIMEOUT,
                  str(getattr(exc, "orig", exc))[:200])
        raise HTTPException(503, "inbox busy, deliver again", headers={"Retry-After": "1"}) from None
