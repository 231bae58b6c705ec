"""The send ledger: every message Siyu sends is claimed under a key before the call, and its outcome recorded.

Welcome messages, loss alerts and auto-replies go through it, and so will every campaign send. A key is
sent at most once: only a send Tencent answered with an error (`failed`, so nothing went out) may be
claimed again. `sending` and `unknown` mean the message may be out already — a lost message is better
than a doubled one — and are left for reconciliation, never retried blindly (DESIGN convention 14).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import TransportError, WeChatAPIError
from bot.models import OutboundSend, SendStatus
from config.database import session_scope, upsert

log = logging.getLogger(__name__)

ERROR_MAX = 4000  # characters of an error kept on the row


def claim(*, session: Session, key: str, cause: str | None) -> OutboundSend | None:
    """The row of `key`, locked and `sending`, when this caller may send now; None when someone claimed it before."""
    created = upsert(session, OutboundSend.__table__, {"key": key, "cause": cause, "status": SendStatus.sending.value},
                     ["key"], returning=OutboundSend.id)
    row = session.scalar(select(OutboundSend).where(OutboundSend.key == key).with_for_update())
    if created is not None:
        return row
    if row.status != SendStatus.failed.value:
        return None
    row.status = SendStatus.sending.value
    return row


def finish(*, key: str, status: SendStatus, error: str | None = None) -> None:
    """Record, in a transaction of its own, how a claimed send ended."""
    with session_scope() as session:
        row = session.scalar(select(OutboundSend).where(OutboundSend.key == key))
        row.status, row.error = status.value, (error or None) and error[:ERROR_MAX]


def skip(*, key: str, reason: str, cause: str | None = None) -> bool:
    """Record that `key` will not be sent, and why (an earlier failure's error is kept after it); False when it was
    claimed before and not failed (it may be out, or on its way)."""
    with session_scope() as session:
        row = claim(session=session, key=key, cause=cause)
        if row is None:
            return False
        row.status = SendStatus.skipped.value
        row.error = (reason + (f"; earlier: {row.error}" if row.error else ""))[:ERROR_MAX]
    log.info("send %s: skipped (%s)", key, reason)
    return True


def send_once(*, key: str, cause: str | None, send: Callable[[], object]) -> str:
    """Claim `key` (in its own transaction), call `send`, record the outcome; 'sent', 'already sent' or 'unknown'.

    Tencent's error answers are recorded as `failed` and raised, so the job queue retries them. A send whose
    outcome is unknown (timeout, dropped connection) is recorded as `unknown` and not retried: the customer
    may have the message already.
    """
    with session_scope() as session:
        if claim(session=session, key=key, cause=cause) is None:
            return "already sent"
    try:
        send()
    except TransportError as exc:
        finish(key=key, status=SendStatus.unknown, error=str(exc))
        log.warning("send %s: outcome unknown, not retried: %s", key, exc)
        return "unknown"
    except WeChatAPIError as exc:
        finish(key=key, status=SendStatus.failed, error=str(exc))
        raise
    except Exception as exc:  # not Tencent's answer: whether anything went out is unknown
        finish(key=key, status=SendStatus.unknown, error=f"{type(exc).__name__}: {exc}")
        raise
    finish(key=key, status=SendStatus.sent)
    return "sent"
