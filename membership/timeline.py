"""The append-only timeline (CONTRACT §6) and the traits derived from it, kept current on every write."""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.orm import Session

from config.database import adopt, insert_of, prepared
from config.types import UTCDateTime, utcnow
from config.write_behind import write_behind
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
    event = TimelineEvent(member_id=member_id, type=type, at=at or utcnow(), data=data or {}, dedupe_key=dedupe_key)
    if dedupe_key is None:
        session.add(event)
        session.flush()
    elif not _insert_once(session, event):
        return None
    _update_derived(session, event)
    for listener in hooks.EVENT_LISTENERS:
        listener(session, event)
    return event


def _insert_once(session: Session, event: TimelineEvent) -> bool:
    # One statement: INSERT … ON CONFLICT (dedupe_key) DO NOTHING. A concurrent writer of the same key waits for
    # the first to commit (then skips) or roll back (then writes), as the unique index makes it.
    row = session.execute(_insert_once_stmt(session), {
        "member_id": event.member_id, "type": event.type, "at": event.at, "data": event.data,
        "dedupe_key": event.dedupe_key, "recorded_at": utcnow()}).first()
    if row is None:
        log.info("timeline %s: already written", event.dedupe_key)
        return False
    event.id, event.recorded_at = row
    adopt(session, event)
    return True


@prepared
def _insert_once_stmt(dialect: str):
    t = TimelineEvent.__table__
    return (insert_of(dialect)(t).on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(t.c.id, t.c.recorded_at))


EARLIEST = "first_seen_at"  # the one time trait that keeps the earliest time; the others keep the latest


def _update_derived(session: Session, event: TimelineEvent) -> None:
    # Atomic upserts (one round trip, rows in one order), so concurrent writers never lose a count.
    now, member_id = utcnow(), event.member_id
    rows = [_counter_row(member_id, f"count.{event.type}", 1, now),
            _time_row(member_id, f"last.{event.type}", event.at, now)]
    if event.type not in NOT_SEEN:
        rows += [_time_row(member_id, EARLIEST, event.at, now), _time_row(member_id, "last_seen_at", event.at, now)]
    sign = SPEND_SIGN.get(event.type)
    if sign and isinstance(event.data.get("amount_fen"), int):
        rows.append(_counter_row(member_id, "total_spent_fen", sign * event.data["amount_fen"], now))
    _upsert_derived(session, rows)


def _counter_row(member_id: int, key: str, delta: float, now: datetime) -> dict:
    return {"member_id": member_id, "key": key, "number_value": delta, "time_value": None, "updated_at": now}


def _time_row(member_id: int, key: str, at: datetime, now: datetime) -> dict:
    return {"member_id": member_id, "key": key, "number_value": None, "time_value": at, "updated_at": now}


def _upsert_derived(session: Session, rows: list[dict]) -> None:
    """Counters (rows with a number) add to the stored number; times keep the latest (the earliest for first_seen)."""
    write_behind(session, _derived_upsert(session), rows, ("member_id", "key"), _combined)


def _combined(a: dict, b: dict) -> dict:
    """The one row whose upsert has the effect of `a`'s then `b`'s (rows of one member and key)."""
    times = [t for t in (a["time_value"], b["time_value"]) if t is not None]
    numbers = [n for n in (a["number_value"], b["number_value"]) if n is not None]
    pick = min if a["key"] == EARLIEST else max
    return {**a, "number_value": sum(numbers) if numbers else None, "time_value": pick(times) if times else None,
            "updated_at": max(a["updated_at"], b["updated_at"])}


@prepared
def _derived_upsert(dialect: str):
    t = Trait.__table__
    stmt = insert_of(dialect)(t)
    new = stmt.excluded
    old_time = t.c.time_value
    keep_old = case((new.key == EARLIEST, old_time < new.time_value), else_=old_time > new.time_value)
    return stmt.on_conflict_do_update(index_elements=["member_id", "key"], set_={
        "number_value": case((new.number_value.is_(None), t.c.number_value),
                             else_=t.c.number_value + new.number_value),
        "time_value": case((new.time_value.is_(None), old_time), (keep_old, old_time), else_=new.time_value),
        "updated_at": new.updated_at,
    })


def recompute_derived_traits(session: Session, member_id: int) -> None:
    """Rebuild every derived trait of a member from their timeline (after a merge moved events)."""
    derived = or_(Trait.key.in_(DERIVED_KEYS), *[Trait.key.startswith(p) for p in DERIVED_PREFIXES])
    session.execute(delete(Trait).where(Trait.member_id == member_id, derived))
    ev = TimelineEvent
    rows = session.execute(
        select(ev.type, func.count(), func.max(ev.at)).where(ev.member_id == member_id).group_by(ev.type)
    ).all()
    now, derived_rows = utcnow(), []
    for type_, n, last in rows:
        derived_rows += [_counter_row(member_id, f"count.{type_}", n, now),
                         _time_row(member_id, f"last.{type_}", _aware(last), now)]
    first, latest = session.execute(
        select(func.min(ev.at), func.max(ev.at)).where(ev.member_id == member_id, ev.type.not_in(NOT_SEEN))
    ).one()
    if first is not None:
        derived_rows += [_time_row(member_id, EARLIEST, _aware(first), now),
                         _time_row(member_id, "last_seen_at", _aware(latest), now)]
    spend = 0
    for e in session.scalars(select(ev).where(ev.member_id == member_id, ev.type.in_(SPEND_SIGN))):
        if isinstance(e.data.get("amount_fen"), int):
            spend += SPEND_SIGN[e.type] * e.data["amount_fen"]
    if spend:
        derived_rows.append(_counter_row(member_id, "total_spent_fen", spend, now))
    if derived_rows:
        _upsert_derived(session, derived_rows)


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
