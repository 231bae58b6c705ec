"""Background jobs of the intake: handle one inbox event, send one welcome message, sweep lost events and old nonces.

Every job takes ids and is safe to run twice. A handler's effects commit in the main database together
with an `InboxApplied` mark under the event's content key (unique), and only then is the inbox row marked
done, in a short transaction of its own: a second copy of the job (a sweeper re-enqueue, a redelivery)
finds the mark and applies nothing, and a job that died in between is finished by the next attempt. No
inbox transaction stays open while a handler runs, so acknowledgements never wait for one.
"""
from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import DataError

from bot.errors import PermanentAPIError
from config.database import read_scope, session_scope, upsert
from config.queue import RETRY_INTERVALS, enqueue
from config.types import utcnow
from membership.exceptions import InvalidInput
from webhooks.dispatch import Event, handler_for
from webhooks.exceptions import PermanentEventError
from webhooks.inbox import inbox_engine, inbox_scope, stuck
from webhooks.warm import warm
from webhooks.metrics import PROCESSED, UNHANDLED
from webhooks.models import InboxApplied, InboxEvent, InboxStatus
from webhooks.replay import purge_nonces

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 1 + len(RETRY_INTERVALS)  # the queue's retries, counted on the row
SWEEP_AFTER = timedelta(seconds=60)  # a `received` row this far past due has lost its job
SWEEP_BACKOFF = timedelta(minutes=10)  # after a sweep: a long queue, not a lost job, may be why it still waits

# Failures that the same event meets on every attempt: recorded once, never retried (a replay may try again).
# Anything else (Tencent's transport, rate and busy errors, a locked database) goes back to the queue.
PERMANENT_ERRORS = (
    PermanentEventError,  # a required field missing, a corrupt CreateTime
    InvalidInput,  # the profile store refused a value from the event (an empty openid, a malformed identity)
    PermanentAPIError,  # Tencent refused the call for a reason retrying will not fix
    DataError,  # the database refused a value (too long, a NUL byte)
)


def process_inbox(inbox_id: int) -> str:
    """Dispatch one stored event to its handler and mark the row done, unhandled or failed."""
    with read_scope(inbox_engine()) as s:
        row = s.get(InboxEvent, inbox_id)
    if row is None or row.status != InboxStatus.received.value:
        return row.status if row else "missing"
    handler = handler_for(row.source, row.msg_type, row.event, row.change_type)
    if handler is None:
        kind = f"{row.msg_type}/{row.event}/{row.change_type}"
        if _settle(inbox_id, InboxStatus.unhandled):
            UNHANDLED.labels(row.source, kind).inc()
            log.info("inbox #%s: no handler for %s, kept", inbox_id, kind)
        return InboxStatus.unhandled.value
    warm(row.source)
    try:
        event = Event(row.id, row.source, dict(row.data or {}))
        event.at  # noqa: B018 - a corrupt CreateTime fails here, before the handler calls anyone
        with session_scope() as session:
            if _mark_applied(session, row):
                handler(session, event)
            else:
                log.info("inbox #%s: already applied by an earlier attempt, marking it done", inbox_id)
    except PERMANENT_ERRORS as exc:
        _record_failure(inbox_id, traceback.format_exc(), permanent=True)
        log.error("inbox #%s: cannot be handled (%s: %s), failed without retries", inbox_id,
                  type(exc).__name__, str(exc)[:200])
        return InboxStatus.failed.value
    except Exception:
        _record_failure(inbox_id, traceback.format_exc())
        raise  # the queue retries with backoff; the row says how often it has been tried
    if _settle(inbox_id, InboxStatus.done):
        PROCESSED.labels(row.source, "done").inc()
    return InboxStatus.done.value


def _mark_applied(session, row: InboxEvent) -> bool:
    # Unique on the content key, in the handler's transaction: True for the one attempt that applies the event.
    # On PostgreSQL a concurrent copy waits here until the first commits (then skips) or rolls back (then applies).
    return upsert(session, InboxApplied.__table__, {"content_key": row.content_key, "inbox_id": row.id,
                                                    "applied_at": utcnow()},
                  ["content_key"], returning=InboxApplied.content_key) is not None


def _settle(inbox_id: int, status: InboxStatus) -> bool:
    """Mark a `received` row done or unhandled; False when another attempt settled it first."""
    with inbox_scope() as session:
        result = session.execute(
            update(InboxEvent).where(InboxEvent.id == inbox_id, InboxEvent.status == InboxStatus.received.value)
            .values(status=status.value, processed_at=utcnow(), error=None,
                    attempts=InboxEvent.attempts + (1 if status is InboxStatus.done else 0)))
        return bool(result.rowcount)


def _record_failure(inbox_id: int, error: str, permanent: bool = False) -> None:
    with inbox_scope() as session:
        row = session.scalar(select(InboxEvent).where(InboxEvent.id == inbox_id).with_for_update())
        if row is None or row.status != InboxStatus.received.value:
            return
        row.attempts = (row.attempts or 0) + 1
        row.error = error[-8000:]
        if permanent or row.attempts >= MAX_ATTEMPTS:
            row.status = InboxStatus.failed.value
            PROCESSED.labels(row.source, "failed").inc()
            if not permanent:
                log.error("inbox #%s: failed for good after %d attempts", inbox_id, row.attempts)
        else:
            wait = RETRY_INTERVALS[min(row.attempts, len(RETRY_INTERVALS)) - 1]
            row.due_at = utcnow() + timedelta(seconds=wait)  # keeps the sweeper off while the retry waits
            PROCESSED.labels(row.source, "retry").inc()
            log.warning("inbox #%s: attempt %d failed, retrying", inbox_id, row.attempts)


def sweep_inbox() -> int:
    """Re-enqueue events stuck in `received` (Redis was down, a worker died mid-job); returns how many.

    It also forgets the nonces whose timestamps are no longer fresh, which keeps the nonce table small.
    """
    with inbox_scope() as session:
        purge_nonces(session, utcnow())
        ids = stuck(session, SWEEP_AFTER)
        if ids:
            # Due again only after the backoff, so a backlog is not re-enqueued every minute.
            session.execute(update(InboxEvent).where(InboxEvent.id.in_(ids))
                            .values(due_at=utcnow() + SWEEP_BACKOFF - SWEEP_AFTER))
            for inbox_id in ids:
                enqueue(process_inbox, inbox_id, session=session)
            log.warning("inbox sweeper: re-enqueued %d stuck events", len(ids))
    return len(ids)


def send_welcome(inbox_id: int) -> str:
    """Send the welcome message of an add_external_contact event with its welcome_code (queue `fast`)."""
    from webhooks.wecom.welcome import send_welcome_for

    warm("wecom")
    return send_welcome_for(inbox_id)
