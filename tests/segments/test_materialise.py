"""Materialised membership: full refresh diffs, per-event re-checks, relative dates, merges, counters."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from config.database import session_scope
from config.queue import recording
from membership.merge import merge_members
from membership.models import Member, MemberTag, TimelineEvent
from membership.tags import ensure_tag, tag_member
from membership.timeline import record_event
from membership.traits import set_trait
from segments import materialise, scheduled, service
from segments.clock import context
from segments.counters import ensure_filters
from segments.graph import event_leaves
from segments.language import parse
from segments.models import EventDayCount, Segment, SegmentMembership
from segments.sql import members_query

EYE_TEST = {"all": [
    {"event": "booking.completed", "count": {"gte": 2}, "within_days": 90, "where": {"service": "eye-test"}},
    {"not": {"event": "groupbuy.paid", "within_days": 30}},
]}


def _members(n: int) -> list[int]:
    with session_scope() as s:
        rows = [Member(name=f"m{i}") for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [m.id for m in rows]


def _inside(segment_id: int) -> set[int]:
    with session_scope() as s:
        return set(s.scalars(select(SegmentMembership.member_id).where(SegmentMembership.segment_id == segment_id)))


def _events(member_id: int, type_: str) -> list[dict]:
    with session_scope() as s:
        return [e.data for e in s.scalars(select(TimelineEvent).where(
            TimelineEvent.member_id == member_id, TimelineEvent.type == type_).order_by(TimelineEvent.id))]


def _create(name: str, definition: dict) -> int:
    with session_scope() as s:
        return service.create_segment(s, name=name, definition=definition).id


def test_full_refresh_applies_the_diff_and_writes_each_change_once(settings, drain):
    """Given tagged members and a VIP segment, when state changes behind its back, then a refresh moves exactly them."""
    a, b, c = _members(3)
    with session_scope() as s:
        vip = ensure_tag(s, "VIP")
        tag_member(s, a, vip)
        tag_member(s, b, vip)
    drain()
    sid = _create("VIP", {"tag": "VIP"})
    drain()
    assert _inside(sid) == {a, b}
    with session_scope() as s:  # changed without any event: only a full refresh can see it
        s.execute(delete(MemberTag).where(MemberTag.member_id == b))
        s.add(MemberTag(member_id=c, tag_id=s.scalar(select(MemberTag.tag_id).where(MemberTag.member_id == a))))
    with session_scope() as s:
        result = materialise.refresh_segment(s, sid)
    assert (result.entered, result.left, result.size) == ([c], [b], 2)
    assert _inside(sid) == {a, c}
    with session_scope() as s:
        again = materialise.refresh_segment(s, sid)
        seg = s.get(Segment, sid)
        assert (again.entered, again.left) == ([], [])
        assert seg.last_refresh_ms is not None and seg.refreshed_at is not None and seg.size == 2
    assert len(_events(b, "segment.entered")) == 1 and len(_events(b, "segment.left")) == 1
    assert len(_events(c, "segment.entered")) == 1


def test_a_refresh_of_changed_members_moves_only_them(settings, drain):
    """Given a VIP segment, when two members change behind its back, then refreshing one of them moves only that one."""
    a, b, c = _members(3)
    with session_scope() as s:
        vip = ensure_tag(s, "VIP")
        tag_member(s, a, vip)
    drain()
    sid = _create("VIP", {"tag": "VIP"})
    drain()
    with session_scope() as s:  # changed without any event
        s.execute(delete(MemberTag).where(MemberTag.member_id == a))
        s.add(MemberTag(member_id=b, tag_id=vip.id))
    with session_scope() as s:
        result = materialise.refresh_members(s, sid, [b, c])
    assert (result.entered, result.left, result.size) == ([b], [], 2)
    assert _inside(sid) == {a, b}
    with session_scope() as s:
        assert materialise.refresh_members(s, sid, []).entered == []
        assert (materialise.refresh_members(s, sid, [a]).left) == [a]
    assert _inside(sid) == {b}
    assert len(_events(b, "segment.entered")) == 1 and len(_events(a, "segment.left")) == 1


def test_a_qualifying_event_moves_a_member_in_and_a_disqualifying_one_out(settings, drain):
    """Given the eye-test segment, when bookings and then a purchase are written, then membership follows each."""
    sid = _create("eye test, no purchase", EYE_TEST)
    drain()
    (m,) = _members(1)
    with session_scope() as s:
        record_event(s, m, "booking.completed", {"service": "eye-test"})
        record_event(s, m, "booking.completed", {"service": "frames"})
    drain()
    assert _inside(sid) == set()
    with session_scope() as s:
        record_event(s, m, "booking.completed", {"service": "eye-test"})
    drain()
    assert _inside(sid) == {m}
    assert _events(m, "segment.entered") == [{"segment_id": sid, "segment": "eye test, no purchase"}]
    with session_scope() as s:
        record_event(s, m, "groupbuy.paid", {"amount_fen": 9900})
    drain()
    assert _inside(sid) == set()
    assert len(_events(m, "segment.left")) == 1


def test_a_trait_set_by_hand_rechecks_the_segments_that_read_it(settings, drain):
    """Given a city segment, when set_trait changes a member's city, then they enter and later leave."""
    sid = _create("上海", {"trait": "city", "op": "eq", "value": "上海"})
    (m,) = _members(1)
    drain()
    with session_scope() as s:
        set_trait(s, m, "city", "上海")
    drain()
    assert _inside(sid) == {m}
    with session_scope() as s:
        set_trait(s, m, "city", None)
    drain()
    assert _inside(sid) == set()


def test_a_recheck_evaluates_only_the_segments_the_change_can_affect(settings, drain):
    """Given a member in a store segment, when only a tag change is re-checked, then the segment is not evaluated."""
    sid = _create("S001", {"store": "S001"})
    drain()
    from membership.service import create_store

    (m,) = _members(1)
    with session_scope() as s:
        store = create_store(s, code="S001", name="一店")
        s.get(Member, m).store_id = store.id
    with session_scope() as s:
        assert materialise.recheck_members(s, {m: {"tag:VIP"}}) == 0
    assert _inside(sid) == set()
    with session_scope() as s:
        assert materialise.recheck_members(s, {m: {"store"}}) == 1
    assert _inside(sid) == {m}


def test_relative_dates_move_members_when_the_day_changes(settings, drain):
    """Given a 7-day window, when evaluated ten days later, then the member leaves; only such segments are scheduled."""
    (m,) = _members(1)
    with session_scope() as s:
        record_event(s, m, "oa.scanned", {"scene": "door"}, at=datetime.now(timezone.utc) - timedelta(days=2))
    drain()
    recent = _create("scanned this week", {"event": "oa.scanned", "within_days": 7})
    _create("ever scanned", {"event": "oa.scanned"})
    drain()
    assert _inside(recent) == {m}
    later = context(today=context().today + timedelta(days=10))
    with session_scope() as s:
        assert materialise.refresh_segment(s, recent, later).left == [m]
    # and the start-of-day schedule queues a job that queues the refresh of the date-relative segment only
    with recording() as queued:
        scheduled.start_of_day()
    [job] = queued
    with recording() as refreshes:
        assert job.func(*job.args) == 1
    assert [(j.func, j.args) for j in refreshes] == [(service.refresh_segment_job, (recent,))]


def test_a_merge_moves_counts_and_membership_to_the_survivor(settings, drain):
    """Given two members with one booking each, when merged, then the survivor has both and enters the 2-booking one."""
    sid = _create("two bookings", {"event": "booking.completed", "count": {"gte": 2}})
    a, b = _members(2)
    with session_scope() as s:
        record_event(s, a, "booking.completed", {})
        record_event(s, b, "booking.completed", {})
    drain()
    assert _inside(sid) == set()
    with session_scope() as s:
        assert merge_members(s, s.get(Member, a), s.get(Member, b), "test")
    drain()
    assert _inside(sid) == {a}
    with session_scope() as s:
        assert s.scalar(select(EventDayCount.member_id).where(EventDayCount.member_id == b)) is None


def test_daily_counters_agree_with_a_scan_of_the_raw_timeline(settings, drain):
    """Given events written through the timeline, when counted from buckets and raw rows, then the members agree."""
    ids = _members(6)
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        for i, mid in enumerate(ids):
            for k in range(i):
                record_event(s, mid, "booking.completed", {"service": "eye-test" if k % 2 else "frames"},
                             at=now - timedelta(days=20 * k))
    drain()
    ctx = context()
    definitions = [{"event": "booking.completed", "count": {"gte": 2}, "within_days": 45},
                   {"event": "booking.completed", "where": {"service": "eye-test"}, "count": {"gte": 2}},
                   {"event": "booking.completed", "count": {"lt": 3}, "within_days": 70}]
    with session_scope() as s:
        for raw in definitions:
            node = parse(raw)
            ensure_filters(s, event_leaves(node, {}))  # the filter's buckets are back-filled from the timeline
            dialect = s.get_bind().dialect.name
            by_buckets = set(s.scalars(members_query(node, ctx, {}, dialect)))
            by_raw = set(s.scalars(members_query(node, ctx, {}, dialect, raw_timeline=True)))
            assert by_buckets == by_raw, raw
