"""Compiler of a definition to a Python predicate over one member's current state (per-event evaluation).

It must agree with `segments.sql` on every definition and every state; a hypothesis test holds it to that.
Each referenced segment is compiled once per `compile_predicate` and evaluated once per member state (its
answer is remembered on the state), however often the definition refers to it.
"""
from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.models import Identity, Member, MemberTag, Relation, RelationStatus, Staff, Store, Tag, Trait
from segments.clock import EvalContext
from segments.graph import Refs
from segments.language import (
    CHANNELS, All, AnyOf, ChannelLeaf, EventLeaf, Node, Not, SegmentLeaf, StaffLeaf, StoreLeaf, TagLeaf, TraitLeaf,
)
from segments.models import EventDayCount

Predicate = Callable[["MemberState"], bool]
_CMP = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


@dataclass
class MemberState:
    """What definitions can see of one member."""

    member_id: int
    merged: bool = False
    store: str | None = None
    tags: set[tuple[str, str]] = field(default_factory=set)  # (group, name)
    traits: dict[str, tuple[str | None, float | None, datetime | None]] = field(default_factory=dict)
    staff: set[str] = field(default_factory=set)  # userids with an active relation
    identity_types: set[str] = field(default_factory=set)
    counts: dict[tuple[str, str], dict[date, int]] = field(default_factory=dict)  # (type, where_key) → day → n
    _sums: dict = field(default_factory=dict, repr=False)  # many segments ask the same window of one state
    _refs: dict = field(default_factory=dict, repr=False)  # compiled reference → its answer for this state

    def forget(self) -> None:
        """Drop what was computed from this state (after changing it in place)."""
        self._sums.clear()
        self._refs.clear()

    def count(self, type_: str, where_key: str, since: date | None) -> int:
        """Events of a type and filter from `since` on (all time when None)."""
        key = (type_, where_key, since)
        total = self._sums.get(key)
        if total is None:
            days = self.counts.get((type_, where_key))
            if not days:
                total = 0
            elif since is None:
                total = sum(days.values())
            else:
                total = sum(n for d, n in days.items() if d >= since)
            self._sums[key] = total
        return total


class _References:
    """The definitions a compilation may reference, each compiled once into a predicate remembered per state."""

    def __init__(self, refs: Refs):
        self.refs = refs
        self.compiled: dict[int, Predicate] = {}

    def predicate(self, segment_id: int, ctx: EvalContext) -> Predicate:
        """The (shared) predicate of a reference to `segment_id`."""
        if segment_id not in self.compiled:
            inner = _compile(self.refs[segment_id], ctx, self)

            def referenced(s: MemberState) -> bool:
                # Keyed by this compilation's function: another compilation (another day, other
                # definitions) never reads its answers.
                answer = s._refs.get(inner)
                if answer is None:
                    answer = s._refs[inner] = inner(s)
                return answer

            self.compiled[segment_id] = referenced
        return self.compiled[segment_id]


def compile_predicate(node: Node, ctx: EvalContext, refs: Refs) -> Predicate:
    """A function telling whether a member's state satisfies `node` (merged members never do)."""
    inner = _compile(node, ctx, _References(refs))
    return lambda state: not state.merged and inner(state)


def _compile(node: Node, ctx: EvalContext, refs: _References) -> Predicate:
    return COMPILERS[type(node)](node, ctx, refs)


def _all(node: All, ctx, refs) -> Predicate:
    parts = [_compile(c, ctx, refs) for c in node.all]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:  # the common case, without a generator per call
        a, b = parts
        return lambda s: a(s) and b(s)
    return lambda s: all(p(s) for p in parts)


def _any(node: AnyOf, ctx, refs) -> Predicate:
    parts = [_compile(c, ctx, refs) for c in node.any]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda s: a(s) or b(s)
    return lambda s: any(p(s) for p in parts)


def _not(node: Not, ctx, refs) -> Predicate:
    part = _compile(node.not_, ctx, refs)
    return lambda s: not part(s)


def _tag(leaf: TagLeaf, ctx, refs) -> Predicate:
    # Operands are copied out of the pydantic leaf once: attribute access on it is slow in a hot loop.
    name, group = leaf.tag, leaf.group
    if group is None:
        return lambda s: any(n == name for _, n in s.tags)
    pair = (group, name)
    return lambda s: pair in s.tags


def _trait(leaf: TraitLeaf, ctx: EvalContext, refs) -> Predicate:
    key, op, kind, v = leaf.trait, leaf.op, leaf.kind, leaf.operand
    if op in ("ne", "not_exists"):
        positive = _trait_test("eq" if op == "ne" else "exists", kind, v, ctx)
        return lambda s: (t := s.traits.get(key)) is None or not positive(t)
    test = _trait_test(op, kind, v, ctx)
    return lambda s: (t := s.traits.get(key)) is not None and test(t)


def _trait_test(op: str, kind: str, v, ctx: EvalContext) -> Callable[[tuple], bool]:
    pos = {"text": 0, "number": 1, "time": 2}.get(kind, 2)
    if op == "exists":
        return lambda t: True
    if op in _CMP:
        cmp = _CMP[op]
        return lambda t: t[pos] is not None and cmp(t[pos], v)
    if op == "in":
        values = set(v)
        return lambda t: t[pos] is not None and t[pos] in values
    if op == "contains":
        return lambda t: t[0] is not None and v in t[0]
    if op == "within_last_days":
        lo, hi = ctx.day_start(ctx.today - timedelta(days=v)), ctx.day_start(ctx.today + timedelta(days=1))
        return lambda t: t[2] is not None and lo <= t[2] < hi
    if op == "more_than_days_ago":
        hi = ctx.day_start(ctx.today - timedelta(days=v))
        return lambda t: t[2] is not None and t[2] < hi
    if op == "anniversary_within_days":
        days, offset = set(ctx.anniversary_days(v)), ctx.offset
        return lambda t: t[2] is not None and _month_day(t[2] + offset) in days
    raise AssertionError(op)  # pragma: no cover


def _month_day(at: datetime) -> int:
    return at.month * 100 + at.day  # `at` is UTC shifted by the fixed offset, as the SQL does


def _event(leaf: EventLeaf, ctx: EvalContext, refs) -> Predicate:
    since = ctx.window_start(leaf.within_days) if leaf.within_days is not None else None
    type_, wk = leaf.event, leaf.where_key
    holds = _count_check(leaf.count.bounds())
    return lambda s: holds(s.count(type_, wk, since))


def _count_check(bounds: tuple[tuple[str, int], ...]) -> Callable[[int], bool]:
    """A plain function for a count spec (CountSpec.holds recomputes its bounds on every call)."""
    checks = [(_CMP[op], k) for op, k in bounds]
    if len(checks) == 1:
        (cmp, k), = checks
        return lambda n: cmp(n, k)
    return lambda n: all(cmp(n, k) for cmp, k in checks)


COMPILERS: dict[type, Callable[..., Predicate]] = {
    All: _all,
    AnyOf: _any,
    Not: _not,
    TagLeaf: _tag,
    TraitLeaf: _trait,
    EventLeaf: _event,
    StoreLeaf: lambda leaf, ctx, refs: (lambda s, code=leaf.store: s.store == code),
    StaffLeaf: lambda leaf, ctx, refs: (lambda s, userid=leaf.staff: userid in s.staff),
    ChannelLeaf: lambda leaf, ctx, refs: (
        lambda s, types=frozenset(CHANNELS[leaf.channel]): not types.isdisjoint(s.identity_types)),
    SegmentLeaf: lambda leaf, ctx, refs: refs.predicate(leaf.segment, ctx),
}


def load_states(session: Session, member_ids: Iterable[int]) -> dict[int, MemberState]:
    """The current state of each member (missing ids are left out), in a handful of queries."""
    ids = list(member_ids)
    states: dict[int, MemberState] = {}
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        _load_chunk(session, chunk, states)
    return states


def _load_chunk(session: Session, ids: list[int], states: dict[int, MemberState]) -> None:
    rows = session.execute(
        select(Member.id, Member.merged_into_id, Store.code).outerjoin(Store, Store.id == Member.store_id)
        .where(Member.id.in_(ids)))
    for mid, merged_into, code in rows:
        states[mid] = MemberState(member_id=mid, merged=merged_into is not None, store=code)
    for mid, group, name in session.execute(
            select(MemberTag.member_id, Tag.group_name, Tag.name).join(Tag, Tag.id == MemberTag.tag_id)
            .where(MemberTag.member_id.in_(ids))):
        states[mid].tags.add((group, name))
    for t in session.execute(select(Trait.member_id, Trait.key, Trait.text_value, Trait.number_value,
                                     Trait.time_value).where(Trait.member_id.in_(ids))):
        states[t.member_id].traits[t.key] = (t.text_value, t.number_value, t.time_value)
    for mid, userid in session.execute(
            select(Relation.member_id, Staff.userid).join(Staff, Staff.id == Relation.staff_id)
            .where(Relation.member_id.in_(ids), Relation.status == RelationStatus.active.value)):
        states[mid].staff.add(userid)
    for mid, type_ in session.execute(select(Identity.member_id, Identity.type).where(Identity.member_id.in_(ids))):
        states[mid].identity_types.add(type_)
    counts: dict[int, dict] = defaultdict(dict)
    c = EventDayCount
    for row in session.execute(select(c.member_id, c.type, c.where_key, c.day, c.n).where(c.member_id.in_(ids))):
        counts[row.member_id].setdefault((row.type, row.where_key), {})[row.day] = row.n
    for mid, per_member in counts.items():
        if mid in states:
            states[mid].counts = per_member
