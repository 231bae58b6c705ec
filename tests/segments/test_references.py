"""Segment references: each referenced segment is evaluated once however often it occurs; the expansion is capped."""
from __future__ import annotations

import contextlib
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, select

from config.database import get_engine, session_scope
from membership.models import Member, Store
from membership.tags import ensure_tag, tag_member
from segments.clock import EvalContext
from segments.graph import ALL, MAX_EXPANDED_DEPTH, MAX_EXPANDED_NODES, resolve
from segments.language import parse
from segments.materialise import recheck_members, refresh_segment
from segments.models import Segment, SegmentMembership
from segments.predicate import MemberState, compile_predicate


@contextlib.contextmanager
def statements():
    """Every SQL statement the application runs inside the block."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _world() -> tuple[int, int, set[int]]:
    """Twelve members, some VIP, some in store S001; (VIP segment id, S001 segment id, ids of VIPs outside S001)."""
    with session_scope() as s:
        store = Store(code="S001", name="一店")
        s.add(store)
        s.flush()
        members = [Member(name=f"m{i}", store_id=store.id if i % 3 == 0 else None) for i in range(12)]
        s.add_all(members)
        s.flush()
        vip = ensure_tag(s, "VIP")
        for m in members[::2]:
            tag_member(s, m.id, vip)
        a = Segment(name="VIP", definition={"tag": "VIP"}, depends_on=[])
        b = Segment(name="S001", definition={"store": "S001"}, depends_on=[])
        s.add_all([a, b])
        s.flush()
        expected = {m.id for i, m in enumerate(members) if i % 2 == 0 and i % 3 != 0}
        return a.id, b.id, expected


def _levels(client, a: int, b: int) -> dict:
    """Three levels of twenty references (the issue's example): 8,821 nodes once inlined, two distinct leaves."""
    level1 = {"all": [{"segment": a}] * 19 + [{"not": {"segment": b}}]}
    sid = client.post("/api/v1/segments", json={"name": "level 1", "definition": level1}).json()["id"]
    sid = client.post("/api/v1/segments", json={"name": "level 2",
                                                "definition": {"any": [{"segment": sid}] * 20}}).json()["id"]
    return {"any": [{"segment": sid}] * 20}


def test_three_levels_of_twenty_references_evaluate_each_segment_once(client, drain):
    """Given 3 levels × 20 references, when previewed and saved, then the answer is the reference evaluation's and
    the SQL run stays the size of the distinct definitions (inlined at every occurrence it was megabytes)."""
    # given
    a, b, expected = _world()
    definition = _levels(client, a, b)
    drain()
    # when previewed
    with statements() as seen:
        r = client.post("/api/v1/segments/preview", json={"definition": definition})
    # then
    assert r.status_code == 200, r.text
    assert r.json() == {"count": len(expected), "sample": sorted(expected)}
    assert len(seen) < 20 and sum(map(len, seen)) < 5_000, (len(seen), sum(map(len, seen)))
    # when saved and refreshed in the background (SQLite: one statement; PostgreSQL: leaf bitmaps)
    with statements() as seen:
        r = client.post("/api/v1/segments", json={"name": "top", "definition": definition})
        assert r.status_code == 201, r.text
        drain()
    # then it holds exactly those members, and no statement was large
    with session_scope() as s:
        inside = set(s.scalars(select(SegmentMembership.member_id)
                               .where(SegmentMembership.segment_id == r.json()["id"])))
        assert s.get(Segment, r.json()["id"]).refresh_error is None
    assert inside == expected
    assert max(map(len, seen)) < 10_000, max(map(len, seen))


class CountingState(MemberState):
    """A member state that counts how often a leaf reads its event counts."""

    def count(self, type_, where_key, since):
        self.reads = getattr(self, "reads", 0) + 1
        return super().count(type_, where_key, since)


def test_the_python_predicate_evaluates_a_shared_reference_once_per_state():
    """Given 3 levels × 20 references over two event leaves, when a member state is checked, then each leaf is read
    at most once (inlined, a non-member read 400 leaves) and the answer is the inlined definition's."""
    # given
    leaf_a, leaf_b = {"event": "booking.completed"}, {"event": "groupbuy.paid", "within_days": 30}
    stored = {1: leaf_a, 2: leaf_b, 3: {"all": [{"segment": 1}] * 19 + [{"not": {"segment": 2}}]},
              4: {"any": [{"segment": 3}] * 20}}
    top = parse({"any": [{"segment": 4}] * 20})
    refs = resolve(top, stored.get)
    ctx = EvalContext(today=date(2026, 3, 1), tz=ZoneInfo("Asia/Shanghai"))
    flat = compile_predicate(parse({"all": [leaf_a, {"not": leaf_b}]}), ctx, {})
    predicate = compile_predicate(top, ctx, refs)
    for counts in ({}, {("booking.completed", ""): {date(2026, 2, 1): 1}},
                   {("booking.completed", ""): {date(2026, 2, 1): 1}, ("groupbuy.paid", ""): {date(2026, 2, 20): 2}}):
        # when
        state = CountingState(member_id=1, counts=counts)
        answer = predicate(state)
        # then
        assert answer == flat(MemberState(member_id=1, counts=counts))
        assert state.reads <= 2


def _chain(n: int) -> list[int]:
    """Segments 1…n: the first is VIPs, each next one `not` the one before."""
    ids = []
    with session_scope() as s:
        previous = None
        for _ in range(n):
            definition = {"tag": "VIP"} if previous is None else {"not": {"segment": previous}}
            seg = Segment(name="link", definition=definition, depends_on=[])
            s.add(seg)
            s.flush()
            ids.append(previous := seg.id)
    return ids


def test_definitions_past_the_expansion_caps_are_refused_with_422(client, drain):
    """Given 4 levels × 10 references (11,111 nodes inlined) and a chain of references 65 levels deep, when
    previewed, saved or patched in, then 422 names the cap; a chain exactly at the depth cap evaluates."""
    # given a VIP, a member who is not, and 4 levels × 10 references
    with session_scope() as s:
        vip, plain = Member(name="vip"), Member(name="plain")
        s.add_all([vip, plain])
        s.flush()
        tag_member(s, vip.id, ensure_tag(s, "VIP"))
        plain_id = plain.id
    sid = client.post("/api/v1/segments", json={"name": "0", "definition": {"tag": "VIP"}}).json()["id"]
    for level in range(3):
        r = client.post("/api/v1/segments", json={"name": f"{level}", "definition": {"any": [{"segment": sid}] * 10}})
        sid = r.json()["id"]
    other = client.post("/api/v1/segments", json={"name": "other", "definition": {"tag": "VIP"}}).json()["id"]
    wide = {"any": [{"segment": sid}] * 10}
    # when / then
    for r in (client.post("/api/v1/segments/preview", json={"definition": wide}),
              client.post("/api/v1/segments", json={"name": "too wide", "definition": wide}),
              client.patch(f"/api/v1/segments/{other}", json={"definition": wide})):
        assert r.status_code == 422, r.text
        assert "MAX_EXPANDED_NODES" in r.json()["detail"] and f"{MAX_EXPANDED_NODES:,}" in r.json()["detail"]
        assert r.json()["detail"].startswith("$.any[0].segment")
    assert client.post("/api/v1/segments/preview", json={"definition": wide["any"][0]}).json()["count"] == 1
    drain()
    # given a chain whose last link nests 63 levels: referenced, it is exactly at the depth cap
    last = _chain(MAX_EXPANDED_DEPTH // 2)[-1]
    at_cap = {"segment": last}
    # then it evaluates on every evaluator: 31 `not`s of VIP is the member who is not one
    r = client.post("/api/v1/segments/preview", json={"definition": at_cap})
    assert r.status_code == 200 and r.json()["count"] == 1, r.text
    with session_scope() as s:
        assert refresh_segment(s, last).size == 1  # SQLite: one statement of CTEs; PostgreSQL: bitmaps
    with session_scope() as s:
        s.execute(delete(SegmentMembership))
    with session_scope() as s:
        recheck_members(s, {plain_id: {ALL}})  # every segment's Python predicate
        assert s.get(SegmentMembership, (last, plain_id)) is not None
    # and one level more is refused
    r = client.post("/api/v1/segments/preview", json={"definition": {"not": at_cap}})
    assert r.status_code == 422 and "MAX_EXPANDED_DEPTH" in r.json()["detail"], r.text
