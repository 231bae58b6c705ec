"""The append-only timeline (CONTRACT §6) and the traits derived from it, kept current on every write."""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import case, delete, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.database import upsert
from config.types import UTCDateTime, utcnow
from membership import hooks
from membership.exceptions import InvalidInput
from membership.models import TimelineEvent, Trait
from membership.traits import DERIVED_KEYS, DERIVED_PREFIXES
from membership.vocabulary import EVENT_TYPES, NOT_SEEN, SPEND_SIGN

log = logging.getLogger(__name__)


def record_event(
    session: Session,
    member_id: int,
    type: str,
    data: dict | None = None,
    *,
    at: datetime | None = None,
    dedupe_key: str | None = None,
) -> TimelineEvent | None:
    """Append an event and update the derived traits; None when `dedupe_key` was written before."""
    if type not in EVENT_TYPES:
        raise InvalidInput(f"timeline: unknown event type {type!r}")
    if dedupe_key is not None and session.scalar(
        select(TimelineEvent.id).where(TimelineEvent.dedupe_key == dedupe_key)
    ):
        return None
    event = TimelineEvent(member_id=member_id, type=type, at=at or utcnow(), data=data or {}, dedupe_key=dedupe_key)
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:
        if dedupe_key is None:
            raise
        log.info("timeline %s: already written by a concurrent writer", dedupe_key)
        return None
    _update_derived(session, event)
    for listener in hooks.EVENT_LISTENERS:
        listener(session, event)
    return event


def _bump_counter(session: Session, member_id: int, key: str, delta: float) -> None:
    t = Trait.__table__
    upsert(
        session, t,
        {"member_id": member_id, "key": key, "number_value": delta, "updated_at": utcnow()},
        ["member_id", "key"],
        {"number_value": t.c.number_value + delta, "updated_at": utcnow()},
    )


def _extend_time(session: Session, member_id: int, key: str, at: datetime, earliest: bool) -> None:
    t = Trait.__table__
    new = literal(at, UTCDateTime)
    keep_old = t.c.time_value < new if earliest else t.c.time_value > new
    upsert(
        session, t,
        {"member_id": member_id, "key": key, "time_value": at, "updated_at": utcnow()},
        ["member_id", "key"],
        {"time_value": case((keep_old, t.c.time_value), else_=new), "updated_at": utcnow()},
    )


def _update_derived(session: Session, event: TimelineEvent) -> None:
    # Atomic SQL updates, so concurrent writers never lose a count.
    _bump_counter(session, event.member_id, f"count.{event.type}", 1)
    _extend_time(session, event.member_id, f"last.{event.type}", event.at, earliest=False)
    if event.type not in NOT_SEEN:
        _extend_time(session, event.member_id, "first_seen_at", event.at, earliest=True)
        _extend_time(session, event.member_id, "last_seen_at", event.at, earliest=False)
    sign = SPEND_SIGN.get(event.type)
    if sign and isinstance(event.data.get("amount_fen"), int):
        _bump_counter(session, event.member_id, "total_spent_fen", sign * event.data["amount_fen"])


def recompute_derived_traits(session: Session, member_id: int) -> None:
    """Rebuild every derived trait of a member from their timeline (after a merge moved events)."""
    derived = or_(Trait.key.in_(DERIVED_KEYS), *[Trait.key.startswith(p) for p in DERIVED_PREFIXES])
    session.execute(delete(Trait).where(Trait.member_id == member_id, derived))
    ev = TimelineEvent
    rows = session.execute(
        select(ev.type, func.count(), func.max(ev.at)).where(ev.member_id == member_id).group_by(ev.type)
    ).all()
    for type_, n, last in rows:
        _bump_counter(session, member_id, f"count.{type_}", n)
        _extend_time(session, member_id, f"last.{type_}", _aware(last), earliest=False)
    first, latest = session.execute(
        select(func.min(ev.at), func.max(ev.at)).where(ev.member_id == member_id, ev.type.not_in(NOT_SEEN))
    ).one()
    if first is not None:
        _extend_time(session, member_id, "first_seen_at", _aware(first), earliest=True)
        _extend_time(session, member_id, "last_seen_at", _aware(latest), earliest=False)
    spend = 0
    for e in session.scalars(select(ev).where(ev.member_id == member_id, ev.type.in_(SPEND_SIGN))):
        if isinstance(e.data.get("amount_fen"), int):
            spend += SPEND_SIGN[e.type] * e.data["amount_fen"]
    if spend:
        _bump_counter(session, member_id, "total_spent_fen", spend)


def _aware(value: datetime) -> datetime:
    # Aggregates bypass the column type on SQLite and come back naive (or as text).
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, None)


def timeline(session: Session, member_id: int, *, limit: int = 50, before: datetime | None = None,
             before_id: int | None = None) -> list[TimelineEvent]:
    """A member's events, newest first; `before` with `before_id` continues after that event exactly (a keyset)."""
    q = select(TimelineEvent).where(TimelineEvent.member_id == member_id)
    if before is not None and before_id is not None:  # events sharing a time are told apart by id
        q = q.where(or_(TimelineEvent.at < before, (TimelineEvent.at == before) & (TimelineEvent.id < before_id)))
    elif before is not None:
        q = q.where(TimelineEvent.at < before)
    return list(session.scalars(q.order_by(TimelineEvent.at.desc(), TimelineEvent.id.desc()).limit(limit)))
