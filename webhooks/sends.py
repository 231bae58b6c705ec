"""Messages sent because of a callback, at most once each: claim a row under a key, send, record the outcome."""
from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import TransportError, WeChatAPIError
from config.database import session_scope, upsert
from webhooks.models import OutboundSend

log = logging.getLogger(__name__)


def claim(session: Session, key: str, inbox_id: int | None) -> OutboundSend | None:
    """The row of `key`, locked and marked `sending`, when this caller may send; None when it may not."""
    upsert(session, OutboundSend.__table__, {"key": key, "inbox_id": inbox_id, "status": "new"}, ["key"])
    row = session.scalar(select(OutboundSend).where(OutboundSend.key == key).with_for_update())
    # "new": first try; "failed": Tencent answered with an error, so nothing went out. Anything else
    # (sent, sending, unknown, skipped) means a message may already be out: never again.
    if row.status not in ("new", "failed"):
        return None
    row.status = "sending"
    return row


def finish(key: str, status: str, error: str | None = None) -> None:
    """Record how a claimed send ended."""
    with session_scope() as session:
        row = session.scalar(select(OutboundSend).where(OutboundSend.key == key))
        row.status, row.error = status, (error or None) and error[:4000]


def send_once(key: str, inbox_id: int | None, send: Callable[[], object]) -> str:
    """Claim `key` (in its own transaction), call `send`, record the outcome; 'sent' or 'already sent'.

    Tencent's error answers are recorded as `failed` and raised, so the job queue retries them. A send whose
    outcome is unknown (timeout, dropped connection) is recorded as `unknown` and not retried: the customer
    may have the message already, and a lost alert is better than a doubled one.
    """
    with session_scope() as session:
        if claim(session, key, inbox_id) is None:
            return "already sent"
    try:
        send()
    except TransportError as exc:
        finish(key, "unknown", str(exc))
        log.warning("send %s: outcome unknown, not retried: %s", key, exc)
        return "unknown"
    except WeChatAPIError as exc:
        finish(key, "failed", str(exc))
        raise
    except Exception as exc:  # not Tencent's answer: whether anything went out is unknown
        finish(key, "unknown", f"{type(exc).__name__}: {exc}")
        raise
    finish(key, "sent")
    return "sent"
