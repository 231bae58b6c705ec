"""Background jobs of the intake: handle one inbox event, send one welcome message, sweep lost events and old nonces.

Every job takes ids and is safe to run twice: the inbox row is locked and its status checked, handlers
write through unique keys, and a welcome_code is claimed before it is used.
"""
from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.database import session_scope
from config.queue import RETRY_INTERVALS, enqueue
from config.types import utcnow
from webhooks.dispatch import Event, handler_for
from webhooks.inbox import stuck
from webhooks.warm import warm
from webhooks.metrics import PROCESSED, UNHANDLED
from webhooks.models import InboxEvent, InboxStatus
from webhooks.replay import purge_nonces

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 1 + len(RETRY_INTERVALS)  # the queue's retries, counted on the row
SWEEP_AFTER = timedelta(seconds=60)  # a `received` row this far past due has lost its job
SWEEP_BACKOFF = timedelta(minutes=10)  # after a sweep: a long queue, not a lost job, may be why it still waits


def _lock(session: Session, inbox_id: int) -> InboxEvent | None:
    # FOR UPDATE (PostgreSQL) makes a second copy of the job wait and then see `done`;
    # SQLite's BEGIN IMMEDIATE already serialises writers.
    return session.scalar(select(InboxEvent).where(InboxEvent.id == inbox_id).with_for_update())


def process_inbox(inbox_id: int) -> str:
    """Dispatch one stored event to its handler and mark the row done, unhandled or failed."""
    with session_scope() as session:
        source = session.scalar(select(InboxEvent.source).where(InboxEvent.id == inbox_id))
    if source is not None:
        warm(source)
    try:
        with session_scope() as session:
            row = _lock(session, inbox_id)
            if row is None or row.status != InboxStatus.received.value:
                return row.status if row else "missing"
            handler = handler_for(row.source, row.msg_type, row.event, row.change_type)
            if handler is None:
                row.status, row.processed_at = InboxStatus.unhandled.value, utcnow()
                UNHANDLED.labels(row.source, f"{row.msg_type}/{row.event}/{row.change_type}").inc()
                log.info("inbox #%s: no handler for %s/%s/%s, kept", inbox_id, row.msg_type, row.event,
                         row.change_type)
                return row.status
            handler(session, Event(row.id, row.source, dict(row.data or {})))
            row.status, row.processed_at, row.error = InboxStatus.done.value, utcnow(), None
            row.attempts = (row.attempts or 0) + 1
            source = row.source
        PROCESSED.labels(source, "done").inc()
        return InboxStatus.done.value
    except Exception:
        _record_failure(inbox_id, traceback.format_exc())
        raise  # the queue retries with backoff; the row says how often it has been tried


def _record_failure(inbox_id: int, error: str) -> None:
    with session_scope() as session:
        row = _lock(session, inbox_id)
        if row is None or row.status != InboxStatus.received.value:
            return
        row.attempts = (row.attempts or 0) + 1
        row.error = error[-8000:]
        if row.attempts >= MAX_ATTEMPTS:
            row.status = InboxStatus.failed.value
            PROCESSED.labels(row.source, "failed").inc()
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
    with session_scope() as session:
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
