"""What every callback route shares: effective credentials, rejection, and storing under one transaction."""
from __future__ import annotations

import logging
import threading

from fastapi import HTTPException, Request
from sqlalchemy.exc import OperationalError

from config.settings import get_settings
from webhooks.crypto import BadPayload, BadSignature, WrongReceiver
from webhooks.inbox import INBOX_BUSY_TIMEOUT, InboxBusy, Stored, inbox_scope, store
from webhooks.metrics import RECEIVED, REJECTED

log = logging.getLogger(__name__)

_creds_lock = threading.Lock()
_creds_cache: dict[str, tuple[object, object]] = {}


def credentials(channel: str):
    """The effective credentials of `wecom`, `official_account` or `miniprogram` (cached per settings object)."""
    from bot.credentials import mp_credentials, oa_credentials, wecom_credentials

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


def reject(source: str, exc: Exception) -> HTTPException:
    """The HTTP error of a refused callback, counted; nothing else is stored."""
    if isinstance(exc, (BadSignature, WrongReceiver)):
        reason, status = ("signature" if isinstance(exc, BadSignature) else "receiver"), 403
    elif isinstance(exc, BadPayload):
        reason, status = "payload", 400
    else:  # pragma: no cover - callers pass the three above
        raise exc
    REJECTED.labels(source, reason).inc()
    log.warning("callback %s: refused (%s: %s)", source, reason, exc)
    return HTTPException(status, f"{reason}: {exc}")


def accept(source: str, plaintext: str, data: dict, extra_jobs=()) -> Stored:
    """Store a verified callback under its content key and enqueue it once committed; 503 when the inbox is stuck."""
    try:
        with inbox_scope() as session:
            return store(session, source, plaintext, data, extra_jobs)
    except (OperationalError, InboxBusy) as exc:
        # The inbox stayed locked (or unwritable) past its short timeout. Answering 503 at once lets Tencent
        # deliver again; waiting longer would pass its 5-second limit and be a retry anyway.
        RECEIVED.labels(source, "busy").inc()
        log.error("callback %s: not stored, inbox unavailable after %.0fs: %s", source, INBOX_BUSY_TIMEOUT,
                  str(getattr(exc, "orig", exc))[:200])
        raise HTTPException(503, "inbox busy, deliver again", headers={"Retry-After": "1"}) from None
