"""Compiler of a definition to a Python predicate over one member's current state (per-event evaluation).

It must agree with `segments.sql` on every definition and every state; a hypothesis test holds it to that.
Each referenced segment is compiled once per `compile_predicate` and evaluated once per member state (its
answer is remembered on the state), however often the definition refers to it.
"""
from __future__ import annotations

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
    _sums: dict = field(default_factory=dict, repr=False, compare=False)  # many segments ask one window of a state
    _refs: dict = field(default_factory=dict, repr=False, compare=False)  # compiled reference → its answer here
    _names: set[str] | None = field(default=None, repr=False, compare=False)  # the tag names, for any group

    def forget(self) -> None:
        """Drop what was computed from this state (after changing it in place)."""
        self._sums.clear()
        self._refs.clear()
        self._names = None

    def tag_names(self) -> set[str]:
        """The names of the member's tags, whatever their group (built once per state)."""
        if self._names is None:
            self._names = {name for _, name in self.tags}
        return self._names

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
            inner = _function(self.refs[segment_id], ctx, self, "{}")

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
    return _function(node, ctx, _References(refs), "not s.merged and {}")


# A definition becomes the source of one function: one call per evaluation instead of one closure call per node
# (five times the work at 200 segments). Every operand is a constant of the function's namespace, never source
# text; operators come from fixed tables; nesting is bounded by the language (MAX_DEPTH, MAX_NODES).
class _Source:
    def __init__(self, ctx: EvalContext, refs: _References):
        self.ctx, self.refs, self.names = ctx, refs, {}

    def const(self, value) -> str:
        name = f"_c{len(self.names)}"
        self.names[name] = value
        return name

    def expr(self, node: Node) -> str:
        return COMPILERS[type(node)](node, self)


def _function(node: Node, ctx: EvalContext, refs: _References, shape: str) -> Predicate:
    src = _Source(ctx, refs)
    body = shape.format(src.expr(node))
    return eval(f"lambda s: {body}", {"__builtins__": {}, **src.names})  # noqa: S307 - see _Source


_OPS = {"eq": "==", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _all(node: All, src: _Source) -> str:
    return "(" + " and ".join(src.expr(c) for c in node.all) + ")"


def _any(node: AnyOf, src: _Source) -> str:
    return "(" + " or ".join(src.expr(c) for c in node.any) + ")"


def _not(node: Not, src: _Source) -> str:
    return f"(not {src.expr(node.not_)})"


def _tag(leaf: TagLeaf, src: _Source) -> str:
    if leaf.group is None:  # the names' set once per state, not a scan of the tags per segment
        return f"({src.const(leaf.tag)} in (s._names if s._names is not None else s.tag_names()))"
    return f"({src.const((leaf.group, leaf.tag))} in s.tags)"


def _trait(leaf: TraitLeaf, src: _Source) -> str:
    # `t` is bound and read within the leaf's own parentheses, so leaves side by side never see another's.
    key = src.const(leaf.trait)
    if leaf.op in ("ne", "not_exists"):
        positive = _trait_test("eq" if leaf.op == "ne" else "exists", leaf.kind, leaf.operand, src)
        return f"((t := s.traits.get({key})) is None or not {positive})"
    return f"((t := s.traits.get({key})) is not None and {_trait_test(leaf.op, leaf.kind, leaf.operand, src)})"


def _trait_test(op: str, kind: str, v, src: _Source) -> str:
    pos = {"text": 0, "number": 1, "time": 2}.get(kind, 2)
    ctx = src.ctx
    if op == "exists":
        return "True"
    if op in _OPS:
        return f"(t[{pos}] is not None and t[{pos}] {_OPS[op]} {src.const(v)})"
    if op == "in":
        return f"(t[{pos}] is not None and t[{pos}] in {src.const(set(v))})"
    if op == "contains":
        return f"(t[0] is not None and {src.const(v)} in t[0])"
    if op == "within_last_days":
        lo, hi = ctx.day_start(ctx.today - timedelta(days=v)), ctx.day_start(ctx.today + timedelta(days=1))
        return f"(t[2] is not None and {src.const(lo)} <= t[2] < {src.const(hi)})"
    if op == "more_than_days_ago":
        return f"(t[2] is not None and t[2] < {src.const(ctx.day_start(ctx.today - timedelta(days=v)))})"
    if op == "anniversary_within_days":
        days, offset = src.const(set(ctx.anniversary_days(v))), src.const(ctx.offset)
        return f"(t[2] is not None and {src.const(_month_day)}(t[2] + {offset}) in {days})"
    raise AssertionError(op)  # pragma: no cover


def _month_day(at: datetime) -> int:
    return at.month * 100 + at.day  # `at` is UTC shifted by the fixed offset, as the SQL does


def _event(leaf: EventLeaf, src: _Source) -> str:
    since = src.ctx.window_start(leaf.within_days) if leaf.within_days is not None else None
    # A window some segment already summed for this state is read straight from the state's sums (`count`'s key).
    key = src.const((leaf.event, leaf.where_key, since))
    count = (f"(s._sums[{key}] if {key} in s._sums else "
             f"s.count({src.const(leaf.event)}, {src.const(leaf.where_key)}, {src.const(since)}))")
    (op, k), *more = leaf.count.bounds()
    if not more:
        return f"({count} {_OPS[op]} {src.const(k)})"
    # `n` is bound and read within the leaf's own parentheses, as `t` is
    rest = "".join(f" and n {_OPS[op]} {src.const(k)}" for op, k in more)
    return f"((n := {count}) {_OPS[op]} {src.const(k)}{rest})"


def _channel(leaf: ChannelLeaf, src: _Source) -> str:
    return f"(not {src.const(frozenset(CHANNELS[leaf.channel]))}.isdisjoint(s.identity_types))"


COMPILERS: dict[type, Callable[[Node, _Source], str]] = {
    All: _all,
    AnyOf: _any,
    Not: _not,
    TagLeaf: _tag,
    TraitLeaf: _trait,
    EventLeaf: _event,
    StoreLeaf: lambda leaf, src: f"(s.store == {src.const(leaf.store)})",
    StaffLeaf: lambda leaf, src: f"({src.const(leaf.staff)} in s.staff)",
    ChannelLeaf: _channel,
    SegmentLeaf: lambda leaf, src: f"{src.const(src.refs.predicate(leaf.segment, src.ctx))}(s)",
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
