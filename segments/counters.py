"""Per-member daily event counters, kept current as timeline events are written.

Every event bumps its unfiltered bucket (member, type, '', business day); an event matching a `where`
filter some definition uses also bumps that filter's bucket. A filter first seen is back-filled from
the timeline once; that is the only time the raw timeline is read for counting.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.database import forget, insert_of, per_transaction, prepared
from config.settings import get_settings
from config.write_behind import write_behind
from membership.models import TimelineEvent
from segments.clock import bucket_day
from segments.language import EventLeaf, where_matches
from segments.models import EventDayCount, EventFilter

log = logging.getLogger(__name__)


def _bump(session: Session, member_id: int, type_: str, where_key: str, day, n: int = 1) -> None:
    write_behind(session, _bump_stmt(session), [{"member_id": member_id, "type": type_, "where_key": where_key,
                                                 "day": day, "n": n}], ("member_id", "type", "where_key", "day"),
                 lambda a, b: {**a, "n": a["n"] + b["n"]})


@prepared
def _bump_stmt(dialect: str):
    t = EventDayCount.__table__
    stmt = insert_of(dialect)(t)
    return stmt.on_conflict_do_update(index_elements=["member_id", "type", "where_key", "day"],
                                      set_={"n": t.c.n + stmt.excluded.n})


def _filters_key(type_: str) -> tuple[str, str]:
    return "segment-filters", type_


def record(session: Session, event: TimelineEvent) -> None:
    """Count one freshly written event in its buckets (atomic upserts, safe against concurrent writers)."""
    day = bucket_day(event.at, get_settings().tz)
    _bump(session, event.member_id, event.type, "", day)
    filters = per_transaction(session, _filters_key(event.type), lambda: session.execute(
        select(EventFilter.where_key, EventFilter.where).where(EventFilter.type == event.type)).all())
    for key, where in filters:
        if where_matches(where, event.data or {}):
            _bump(session, event.member_id, event.type, key, day)


def ensure_filters(session: Session, leaves: list[EventLeaf]) -> list[str]:
    """Track every `where` filter of `leaves`, back-filling the new ones; the new filters' keys."""
    added = []
    for leaf in leaves:
        if not leaf.where or session.scalar(select(EventFilter.id).where(
                EventFilter.type == leaf.event, EventFilter.where_key == leaf.where_key)):
            continue
        try:
            with session.begin_nested():
                session.add(EventFilter(type=leaf.event, where_key=leaf.where_key, where=leaf.where))
            forget(session, _filters_key(leaf.event))
        except IntegrityError:  # a concurrent request registered (and back-fills) it
            continue
        _backfill(session, leaf.event, leaf.where_key, leaf.where)
        added.append(leaf.where_key)
    return added


def _backfill(session: Session, type_: str, key: str, where: dict, tz: ZoneInfo | None = None) -> None:
    zone = tz or get_settings().tz
    if session.get_bind().dialect.name == "postgresql":
        _backfill_pg(session, type_, key, where, zone)
        return
    buckets: Counter = Counter()
    rows = session.execute(select(TimelineEvent.member_id, TimelineEvent.at, TimelineEvent.data)
                           .where(TimelineEvent.type == type_).execution_options(yield_per=5000))
    for member_id, at, data in rows:
        if where_matches(where, data or {}):
            buckets[(member_id, bucket_day(at, zone))] += 1
    t = EventDayCount.__table__
    rows = [{"member_id": m, "type": type_, "where_key": key, "day": d, "n": n} for (m, d), n in buckets.items()]
    for i in range(0, len(rows), 5000):  # the filter is new, so its buckets are too: plain inserts
        session.execute(t.insert(), rows[i:i + 5000])
    log.info("counter %s %s: back-filled %d buckets from the timeline", type_, key, len(buckets))


def _backfill_pg(session: Session, type_: str, key: str, where: dict, zone: ZoneInfo) -> None:
    # jsonb @> compares scalars by type and value, as `where_matches` does, so PostgreSQL counts in place.
    session.execute(text(
        "INSERT INTO segment_event_days (member_id, type, where_key, day, n) "
        "SELECT member_id, type, :key, (at AT TIME ZONE :tz)::date, count(*) FROM timeline_events "
        "WHERE type = :type AND data @> CAST(:where AS jsonb) GROUP BY member_id, type, 4 "
        "ORDER BY member_id, 4 "  # key order: the primary-key index is appended to, not written at random
        "ON CONFLICT (member_id, type, where_key, day) DO UPDATE SET n = segment_event_days.n + excluded.n"),
        {"key": key, "tz": zone.key, "type": type_, "where": json.dumps(where, ensure_ascii=False)})
    log.info("counter %s %s: back-filled from the timeline in SQL", type_, key)


def rebuild_member(session: Session, member_id: int) -> None:
    """Recount a member's buckets from their timeline (after a merge moved events onto them)."""
    zone = get_settings().tz
    session.execute(delete(EventDayCount).where(EventDayCount.member_id == member_id))
    filters: dict[str, list] = {}
    for type_, key, where in session.execute(select(EventFilter.type, EventFilter.where_key, EventFilter.where)):
        filters.setdefault(type_, []).append((key, where))
    buckets: Counter = Counter()
    for type_, at, data in session.execute(select(TimelineEvent.type, TimelineEvent.at, TimelineEvent.data)
                                           .where(TimelineEvent.member_id == member_id)):
        day = bucket_day(at, zone)
        buckets[(type_, "", day)] += 1
        for key, where in filters.get(type_, ()):
            if where_matches(where, data or {}):
                buckets[(type_, key, day)] += 1
    for (type_, key, day), n in buckets.items():
        _bump(session, member_id, type_, key, day, n)
