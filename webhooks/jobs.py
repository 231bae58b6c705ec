"""Background jobs of the intake that only schedules enqueue: sweep lost events and old nonces, the nightly sync.

Every job is safe to run twice. The job that handles one event lives with the inbox that enqueues it
(`webhooks.inbox.process_inbox`), the welcome message with the welcome code (`webhooks.wecom.welcome`).
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import update

from config.queue import enqueue
from config.types import utcnow
from webhooks.inbox import inbox_scope, process_inbox, stuck
from webhooks.models import InboxEvent
from webhooks.replay import purge_nonces
from webhooks.wecom.sync import sync_wecom

log = logging.getLogger(__name__)

SWEEP_AFTER = timedelta(seconds=60)  # a `received` row this far past due has lost its job
SWEEP_BACKOFF = timedelta(minutes=10)  # after a sweep: a long queue, not a lost job, may be why it still waits


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


def sync_wecom_job() -> dict:
    """The nightly full reconcile with WeCom (resumes an interrupted run)."""
    return asdict(sync_wecom(progress=False))
