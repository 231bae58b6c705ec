"""Compiler of a definition to one SQL condition over `members` (SQLAlchemy core; SQLite and PostgreSQL).

Every leaf becomes `members.id [NOT] IN (uncorrelated subquery)`: PostgreSQL hashes each subquery once
and SQLite materialises it once, so a nested definition costs one pass per leaf plus one over members.
A `{"segment": id}` reference becomes `members.id IN (SELECT id FROM segment_<id>)`, one CTE per referenced
segment however often it occurs (inlining it at each occurrence grew the statement exponentially with the
nesting of references, and past SQLite's expression depth); both databases materialise a CTE used twice.
With a `scope` (member ids), every leaf subquery is restricted to those ids too, so an incremental refresh
reads a few index entries per changed member instead of hashing each leaf's full set.
`leaf_rows` gives each leaf's own SELECT of member ids, which `segments.idsets` combines as bitmaps for full
evaluations on PostgreSQL; this one-statement form serves SQLite and the raw-timeline baseline.
Event counts read the daily counter buckets; `raw_timeline=True` reads the timeline instead (the bench's
naive baseline, and a cross-check in tests).
"""
from __future__ import annotations

import operator
from datetime import timedelta
from collections.abc import Callable

from sqlalchemy import BigInteger, Integer, and_, any_, bindparam, cast, func, not_, or_, select, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from membership.models import (
    Identity, Member, MemberTag, Relation, RelationStatus, Staff, Store, Tag, TimelineEvent, Trait,
)
from segments.clock import EvalContext
from segments.graph import Refs
from segments.language import (
    CHANNELS, All, AnyOf, ChannelLeaf, EventLeaf, Node, Not, SegmentLeaf, StaffLeaf, StoreLeaf, TagLeaf,
    TraitLeaf,
)
from segments.models import EventDayCount

_CMP = {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_AT_LEAST_ONE = ((("gte", 1),), (("gt", 0),))  # count specs that only ask for one event


def id_filter(ids, dialect: str) -> Callable:
    """A function restricting a member-id column to `ids` (one array parameter on PostgreSQL)."""
    if dialect == "postgresql":
        # One array bind instead of thousands of scalar ones; the planner probes indexes per element.
        param = bindparam("scope_ids", list(ids), type_=ARRAY(BigInteger))
        return lambda column: column == any_(param)
    frozen = sorted(ids)
    return lambda column: column.in_(frozen)


class SqlCompiler:
    """Compiles nodes for one dialect, one evaluation day and one set of resolved references."""

    def __init__(self, ctx: EvalContext, refs: Refs, dialect: str, raw_timeline: bool = False,
                 scope: Callable | None = None):
        self.ctx, self.refs, self.dialect, self.raw_timeline = ctx, refs, dialect, raw_timeline
        self.scope = scope or (lambda column: true())
        self._ctes: dict[int, object] = {}  # segment id → its CTE, built once and shared by every occurrence
        self.handlers: dict[type, Callable[[Node], ColumnElement[bool]]] = {
            All: lambda n: and_(*[self.condition(c) for c in n.all]),
            AnyOf: lambda n: or_(*[self.condition(c) for c in n.any]),
            Not: lambda n: not_(self.condition(n.not_)),
            TagLeaf: self._leaf_condition,
            TraitLeaf: self._leaf_condition,
            EventLeaf: self._leaf_condition,
            # A NULL store must read as false, not unknown, or NOT would drop those members.
            StoreLeaf: lambda n: and_(Member.store_id.is_not(None), Member.store_id.in_(self._store_ids(n))),
            StaffLeaf: self._leaf_condition,
            ChannelLeaf: self._leaf_condition,
            SegmentLeaf: self._reference,
        }

    def condition(self, node: Node) -> ColumnElement[bool]:
        """The SQL truth of `node` for the row of `members` in the enclosing query."""
        return self.handlers[type(node)](node)

    def _reference(self, leaf: SegmentLeaf) -> ColumnElement[bool]:
        sid = leaf.segment
        cte = self._ctes.get(sid)
        if cte is None:
            members = select(Member.id.label("id")).where(self.scope(Member.id), self.condition(self.refs[sid]))
            cte = self._ctes[sid] = members.cte(f"segment_{sid}")
        return Member.id.in_(select(cte.c.id))

    def _leaf_condition(self, leaf: Node) -> ColumnElement[bool]:
        rows, negated = self.leaf_rows(leaf)
        return Member.id.not_in(rows) if negated else Member.id.in_(rows)

    # -- leaves ------------------------------------------------------------------------------------
    def leaf_rows(self, leaf: Node):
        """(SELECT of member ids, negated): the leaf holds for exactly the ids listed, or all but them when negated."""
        if isinstance(leaf, TagLeaf):
            tags = select(Tag.id).where(Tag.name == leaf.tag)
            if leaf.group is not None:
                tags = tags.where(Tag.group_name == leaf.group)
            return select(MemberTag.member_id).where(MemberTag.tag_id.in_(tags), self.scope(MemberTag.member_id)), False
        if isinstance(leaf, StaffLeaf):
            staff = select(Staff.id).where(Staff.userid == leaf.staff)
            return select(Relation.member_id).where(
                Relation.staff_id.in_(staff), Relation.status == RelationStatus.active.value,
                self.scope(Relation.member_id)), False
        if isinstance(leaf, ChannelLeaf):
            return select(Identity.member_id).where(Identity.type.in_(CHANNELS[leaf.channel]),
                                                    self.scope(Identity.member_id)), False
        if isinstance(leaf, StoreLeaf):  # members without a store are simply not listed
            return select(Member.id).where(Member.store_id.in_(self._store_ids(leaf)), self.scope(Member.id)), False
        if isinstance(leaf, TraitLeaf):
            return self._trait(leaf)
        if isinstance(leaf, EventLeaf):
            return self._event(leaf)
        raise AssertionError(type(leaf))  # pragma: no cover

    def _store_ids(self, leaf: StoreLeaf):
        return select(Store.id).where(Store.code == leaf.store)

    def _trait(self, leaf: TraitLeaf):
        op, kind, v = leaf.op, leaf.kind, leaf.operand
        if op in ("ne", "not_exists"):  # members without the trait match: list those with it and negate
            positive = "eq" if op == "ne" else "exists"
            return self._trait_rows(leaf.trait, self._trait_cond(positive, kind, v)), True
        return self._trait_rows(leaf.trait, self._trait_cond(op, kind, v)), False

    def _trait_rows(self, key: str, cond: ColumnElement[bool]):
        return select(Trait.member_id).where(Trait.key == key, cond, self.scope(Trait.member_id))

    def _trait_cond(self, op: str, kind: str, v) -> ColumnElement[bool]:
        column = {"text": Trait.text_value, "number": Trait.number_value, "time": Trait.time_value}.get(kind)
        ctx = self.ctx
        if op == "exists":
            return true()
        if op in _CMP:
            return _CMP[op](column, v)
        if op == "in":
            return column.in_(list(v))
        if op == "contains":  # LIKE is case-insensitive on SQLite and needs escaping; position is neither
            fn = func.instr if self.dialect == "sqlite" else func.strpos
            return fn(Trait.text_value, v) > 0
        if op == "within_last_days":
            return and_(Trait.time_value >= ctx.day_start(ctx.today - timedelta(days=v)),
                        Trait.time_value < ctx.day_start(ctx.today + timedelta(days=1)))
        if op == "more_than_days_ago":
            return Trait.time_value < ctx.day_start(ctx.today - timedelta(days=v))
        if op == "anniversary_within_days":
            return self._month_day(Trait.time_value).in_(list(ctx.anniversary_days(v)))
        raise AssertionError(op)  # pragma: no cover

    def _month_day(self, column) -> ColumnElement[int]:
        minutes = int(self.ctx.offset.total_seconds() // 60)
        if self.dialect == "sqlite":
            return cast(func.strftime("%m%d", column, f"{minutes:+d} minutes"), Integer)
        shifted = func.timezone("UTC", column) + text(f"interval '{minutes} minutes'")
        # date_part on a timestamp is several times cheaper than to_char over a million birthdays.
        return cast(func.date_part("month", shifted) * 100 + func.date_part("day", shifted), Integer)

    def _event(self, leaf: EventLeaf):
        rows, total = self._raw_rows(leaf) if self.raw_timeline else self._bucket_rows(leaf)
        spec = leaf.count
        if spec.bounds() in _AT_LEAST_ONE:  # any one event (buckets hold n ≥ 1): no per-member sum needed
            return (rows if self.raw_timeline else rows.where(EventDayCount.n > 0)), False
        if spec.holds(0):  # members without a single event qualify: list those whose count fails, negated
            failing = not_(and_(*[_CMP[op](total, k) for op, k in spec.bounds()]))
            return rows.group_by(rows.selected_columns[0]).having(failing), True
        holding = and_(*[_CMP[op](total, k) for op, k in spec.bounds()])
        return rows.group_by(rows.selected_columns[0]).having(holding), False

    def _bucket_rows(self, leaf: EventLeaf):
        c = EventDayCount
        q = select(c.member_id).where(c.type == leaf.event, c.where_key == leaf.where_key, self.scope(c.member_id))
        if leaf.within_days is not None:
            q = q.where(c.day >= self.ctx.window_start(leaf.within_days))
        return q, func.sum(c.n)

    def _raw_rows(self, leaf: EventLeaf):
        e = TimelineEvent
        q = select(e.member_id).where(e.type == leaf.event, self.scope(e.member_id))
        if leaf.within_days is not None:
            q = q.where(e.at >= self.ctx.day_start(self.ctx.window_start(leaf.within_days)))
        for key, want in (leaf.where or {}).items():
            field = e.data[key]
            if isinstance(want, bool):
                q = q.where(field.as_boolean() == want)
            elif isinstance(want, str):
                q = q.where(field.as_string() == want)
            else:
                q = q.where(field.as_float() == want)
        return q, func.count()


def members_query(node: Node, ctx: EvalContext, refs: Refs, dialect: str, raw_timeline: bool = False,
                  scope: Callable | None = None):
    """SELECT members.id of live members matching `node` (only among `scope`'s ids when given)."""
    compiler = SqlCompiler(ctx, refs, dialect, raw_timeline, scope)
    return select(Member.id).where(Member.merged_into_id.is_(None), compiler.scope(Member.id), compiler.condition(node))


def prepare(session: Session) -> None:
    """Tune this transaction for one-pass evaluation over all members (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        # Room to hash each leaf's member ids in memory.
        session.execute(text("SET LOCAL work_mem = '256MB'"))
        # JIT compiling a plan of a dozen subplans cost ~0.35 s and saved nothing at 1M members.
        session.execute(text("SET LOCAL jit = off"))
        # Each parallel worker rebuilds every hashed subplan itself, so workers tripled the hashing
        # (5.5 s against 4.1 s serial at 1M members on 2 cores).
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
