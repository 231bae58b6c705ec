"""The inbox as operators see it: stored callbacks listed by status and source, failed ones replayed."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.database import read_scope
from membership.exceptions import Conflict, NotFound
from webhooks.inbox import inbox_engine, requeue
from webhooks.models import InboxEvent, InboxStatus
from webhooks.retention import PURGED

REPLAYABLE = (InboxStatus.failed.value, InboxStatus.unhandled.value)


def list_events(*, status: InboxStatus | None = None, source: str | None = None, after_id: int | None = None,
                limit: int = 50) -> list[InboxEvent]:
    """Stored callbacks by id from `after_id` on (a keyset page), read outside any writer's lock."""
    q = select(InboxEvent).order_by(InboxEvent.id).limit(limit)
    if status is not None:
        q = q.where(InboxEvent.status == status.value)
    if source:
        q = q.where(InboxEvent.source == source)
    if after_id is not None:
        q = q.where(InboxEvent.id > after_id)
    with read_scope(inbox_engine()) as session:  # a reader never holds the lock acknowledgements need
        return list(session.scalars(q))


def replay(session: Session, inbox_id: int) -> InboxEvent:
    """Handle a failed or unhandled event again from its first attempt; `session` is on the inbox's engine."""
    row = session.get(InboxEvent, inbox_id)
    if row is None:
        raise NotFound(f"inbox event {inbox_id} not found")
    if row.status not in REPLAYABLE:
        raise Conflict(f"inbox event {inbox_id} is {row.status}; only failed or unhandled ones replay")
    if row.payload == PURGED:
        raise Conflict(f"inbox event {inbox_id}: its payload was emptied after the retention period")
    requeue(session, inbox_id)
    session.refresh(row)
    return row
