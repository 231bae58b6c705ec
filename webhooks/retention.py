"""Inbox retention: decrypted payloads are emptied after SIYU_INBOX_RETENTION_DAYS; the rows stay.

A callback carries personal data (names, messages, remarks) that Siyu needs only until it is handled
and a while after, for replays and audits. The row keeps its id, content key, kind, status, error and
times, so a duplicate that Tencent delivers late is still recognised by its key and changes nothing.
Only finished rows are emptied: a `received` row still waits for its worker.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from config.settings import get_settings
from config.types import utcnow
from webhooks.inbox import inbox_scope
from webhooks.models import InboxEvent, InboxStatus

log = logging.getLogger(__name__)

BATCH = 500  # rows per transaction: short write locks, and a killed run keeps what it emptied
FINISHED = (InboxStatus.done.value, InboxStatus.unhandled.value, InboxStatus.failed.value)
PURGED = ""  # what an emptied payload holds (the column is NOT NULL); its `data` becomes {}


def purge_inbox_payloads(now: datetime | None = None, batch: int = BATCH) -> int:
    """Empty the payload and data of finished inbox rows older than the retention; returns how many."""
    cutoff = (now or utcnow()) - timedelta(days=get_settings().inbox_retention_days)
    purged, after = 0, 0
    while True:
        with inbox_scope() as session:
            ids = list(session.scalars(
                select(InboxEvent.id)
                .where(InboxEvent.id > after, InboxEvent.received_at < cutoff,
                       InboxEvent.status.in_(FINISHED), InboxEvent.payload != PURGED)
                .order_by(InboxEvent.id).limit(batch)))
            if not ids:
                break
            # The status is checked again in the UPDATE: a replay may have put a row back to `received`.
            emptied = session.execute(
                update(InboxEvent)
                .where(InboxEvent.id.in_(ids), InboxEvent.status.in_(FINISHED))
                .values(payload=PURGED, data={})).rowcount
        purged += emptied
        after = ids[-1]
    if purged:
        log.info("inbox retention: emptied %d payloads received before %s", purged, cutoff.isoformat())
    return purged
