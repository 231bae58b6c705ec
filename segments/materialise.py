"""Materialised membership: full refresh (diff in SQL) and per-member re-checks (Python predicates).

Either path changes a `segment_membership` row only through an insert-if-absent or a delete whose
result says whether it changed anything, and writes `segment.entered` / `segment.left` only then, so a
refresh racing a re-check never writes an event twice. On SQLite, whose write lock covers the whole
database, the jobs and the API run a full refresh in chunks of member ids, each its own short transaction
(`refresh_in_chunks`), so callbacks, jobs and requests get the lock between chunks.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date

from sqlalchemy import BigInteger, and_, bindparam, delete, exists, func, literal, select, true, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from config.types import utcnow
from membership.models import Member
from membership.timeline import record_event
from segments import counters, failures, rules
from segments.clock import EvalContext, context
from segments.exceptions import NotFound, Unevaluable
from segments.graph import ALL, Refs, event_leaves, resolve
from segments.language import Node, parse
from segments.models import Segment, SegmentMembership
from segments.idsets import ids_of, matching_bitmap
from segments.predicate import Predicate, compile_predicate, load_states
from segments.sql import SqlCompiler, id_filter, prepare

log = logging.getLogger(__name__)

# A chunked refresh's transactions aim at CHUNK_TARGET seconds of write lock each: the first takes CHUNK
# members, each next one as many as the last one's pace allows (writing an entered/left event costs far more
# than evaluating a member, so a first refresh moves slowly and a quiet one in large strides).
CHUNK = 250
MIN_CHUNK, MAX_CHUNK = 50, 20000
CHUNK_TARGET = 0.1


@dataclass
class RefreshResult:
    """What a full refresh changed and how long it took."""

    segment_id: int
    entered: list[int]
    left: list[int]
    size: int
    diff_ms: int
    total_ms: int


def definitions_loader(session: Session):
    """A loader of stored definitions by id, for `graph.resolve`."""
    def load(segment_id: int) -> dict | None:
        return session.scalar(select(Segment.definition).where(Segment.id == segment_id))
    return load


def compile_segment(session: Session, segment: Segment) -> tuple[Node, Refs]:
    """The parsed definition of a stored segment and the segments it references."""
    node = parse(segment.definition)
    return node, resolve(node, definitions_loader(session), self_id=segment.id)


def _insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(SegmentMembership)


def refresh_segment(session: Session, segment_id: int, ctx: EvalContext | None = None) -> RefreshResult:
    """Re-evaluate a segment over every member; apply the entered/left diff and write their events."""
    return _refresh(session, segment_id, ctx, None)


def refresh_members(session: Session, segment_id: int, member_ids, ctx: EvalContext | None = None) -> RefreshResult:
    """Re-evaluate a segment for `member_ids` only (the members that changed); apply and write their diff."""
    return _refresh(session, segment_id, ctx, sorted(set(member_ids)))


def _refresh(session: Session, segment_id: int, ctx: EvalContext | None, member_ids: list[int] | None) -> RefreshResult:
    with failures.translated(segment_id):  # no SQL in what a failure says; Unevaluable when no retry can help
        return _evaluate(session, segment_id, ctx or context(), member_ids)


def _evaluate(session: Session, segment_id: int, ctx: EvalContext, member_ids: list[int] | None) -> RefreshResult:
    started = time.perf_counter()
    segment = session.scalar(select(Segment).where(Segment.id == segment_id).with_for_update())
    if segment is None:
        raise NotFound(f"segment {segment_id} not found")
    node, refs = compile_segment(session, segment)
    counters.ensure_filters(session, event_leaves(node, refs))
    prepare(session)
    dialect = session.get_bind().dialect.name
    scope = id_filter(member_ids, dialect) if member_ids is not None else None
    if member_ids == []:
        entered, left = [], []
    elif dialect == "postgresql" and member_ids is None:  # full: combine the leaves' bitmaps (idsets)
        entered, left = apply_ids(session, segment.id, ids_of(matching_bitmap(session, node, ctx, refs)))
    else:  # a few members, or SQLite (its bound-parameter limit rules out id lists): one statement
        condition = SqlCompiler(ctx, refs, dialect, scope=scope).condition(node)
        entered, left = apply_diff(session, segment.id, condition, scope)
    diff_ms = int((time.perf_counter() - started) * 1000)
    _write_changes(session, segment, sorted(entered), sorted(left))
    return _finish(session, segment, entered, left, started, diff_ms, full=member_ids is None,
                   how="fully" if member_ids is None else f"{len(member_ids)} members")


def _finish(session: Session, segment: Segment, entered: list[int], left: list[int], started: float,
            diff_ms: int, *, full: bool, how: str) -> RefreshResult:
    sm = SegmentMembership
    size = session.scalar(select(func.count()).select_from(sm).where(sm.segment_id == segment.id)) or 0
    total_ms = int((time.perf_counter() - started) * 1000)
    segment.size = size
    if full:  # only a full refresh vouches for every member
        segment.refreshed_at, segment.last_refresh_ms = utcnow(), total_ms
        segment.last_entered, segment.last_left = len(entered), len(left)
        segment.refresh_error = None
    log.info("segment %s: %s refreshed in %d ms (diff %d ms): %d entered, %d left, size %d", segment.id,
             how, total_ms, diff_ms, len(entered), len(left), size)
    return RefreshResult(segment.id, entered, left, size, diff_ms, total_ms)


Transaction = Callable[[], AbstractContextManager[Session]]


def refresh_in_chunks(transaction: Transaction, segment_id: int,
                      ctx: EvalContext | None = None) -> RefreshResult | None:
    """Fully refresh a segment in short transactions of a chunk of members each, opened with `transaction()`.

    Each chunk applies its own entered/left diff and writes its events; the segment's size and refresh time
    are written at the end. A member that changes meanwhile is re-checked by the listeners as usual, and the
    diff's insert-if-absent / delete-returning writes keep a racing re-check from doubling an event.
    None when the segment is gone.
    """
    with failures.translated(segment_id):  # as _refresh: no SQL in a failure, Unevaluable when no retry helps
        return _refresh_in_chunks(transaction, segment_id, ctx)


def _refresh_in_chunks(transaction: Transaction, segment_id: int, ctx: EvalContext | None) -> RefreshResult | None:
    ctx, chunk = ctx or context(), min(CHUNK, MAX_CHUNK)
    started = time.perf_counter()
    with transaction() as session:
        segment = session.get(Segment, segment_id)
        if segment is None:
            return None
        node, refs = compile_segment(session, segment)
        counters.ensure_filters(session, event_leaves(node, refs))
    entered, left, lo, chunks, longest = [], [], None, 0, 0.0
    while True:
        begun = time.perf_counter()
        with transaction() as session:
            dialect = session.get_bind().dialect.name
            hi = _chunk_end(session, lo, chunk)
            scope = _id_range(lo, hi)
            cond = SqlCompiler(ctx, refs, dialect, scope=scope).condition(node)
            chunk_entered, chunk_left = apply_diff(session, segment_id, cond, scope)
            _write_changes(session, segment, sorted(chunk_entered), sorted(chunk_left))
        took = time.perf_counter() - begun
        entered += chunk_entered
        left += chunk_left
        chunks, longest = chunks + 1, max(longest, took)
        if hi is None:
            break
        lo = hi
        chunk = min(MAX_CHUNK, max(MIN_CHUNK, int(chunk * min(4.0, CHUNK_TARGET / max(took, 1e-4)))))
    diff_ms = int((time.perf_counter() - started) * 1000)
    with transaction() as session:
        segment = session.get(Segment, segment_id)
        if segment is None:  # deleted meanwhile: its memberships went with it
            return None
        return _finish(session, segment, entered, left, started, diff_ms, full=True,
                       how=f"fully in {chunks} transactions (longest {longest * 1000:.0f} ms)")


def _chunk_end(session: Session, lo: int | None, chunk: int) -> int | None:
    """The last member id of the chunk after `lo`, or None when the rest fits in this chunk (the open end)."""
    q = select(Member.id).order_by(Member.id).offset(chunk - 1).limit(1)
    return session.scalar(q.where(Member.id > lo) if lo is not None else q)


def _id_range(lo: int | None, hi: int | None) -> Callable:
    # (lo, hi], open where None: the chunks tile every id, memberships of ids past the last member included.
    return lambda column: and_(column > lo if lo is not None else true(), column <= hi if hi is not None else true())


def apply_diff(session: Session, segment_id: int, cond, scope=None) -> tuple[list[int], list[int]]:
    """Make `segment_membership` match `cond` (among `scope`'s members when given); the ids that entered and left."""
    sm = SegmentMembership
    in_scope = scope or (lambda column: literal(True))
    matching = select(Member.id).where(Member.merged_into_id.is_(None), in_scope(Member.id), cond)
    if session.get_bind().dialect.name == "postgresql":
        return _apply_diff_once(session, segment_id, matching, in_scope)
    current = select(sm.member_id).where(sm.segment_id == segment_id)
    entering = (select(literal(segment_id), Member.id, literal(utcnow(), sm.entered_at.type))
                .where(Member.merged_into_id.is_(None), in_scope(Member.id), cond, Member.id.not_in(current)))
    stmt = (_insert(session).from_select(["segment_id", "member_id", "entered_at"], entering)
            .on_conflict_do_nothing(index_elements=["segment_id", "member_id"]).returning(sm.member_id))
    entered = list(session.scalars(stmt))
    left = list(session.scalars(delete(sm).where(sm.segment_id == segment_id, in_scope(sm.member_id),
                                                 sm.member_id.not_in(matching)).returning(sm.member_id)))
    return entered, left


def apply_ids(session: Session, segment_id: int, ids, scope=None) -> tuple[list[int], list[int]]:
    """Make `segment_membership` hold exactly `ids` (among `scope`'s members when given; PostgreSQL)."""
    in_scope = scope or (lambda column: literal(True))
    # One array parameter, unnested into the CTE the insert and the delete both read.
    matching = select(func.unnest(bindparam("matching_ids", sorted(ids), type_=ARRAY(BigInteger))).label("id"))
    return _apply_diff_once(session, segment_id, matching, in_scope)


def _apply_diff_once(session: Session, segment_id: int, matching, in_scope) -> tuple[list[int], list[int]]:
    # One statement: the condition is evaluated once into a CTE that both the insert and the delete read
    # (both see the same snapshot, so the delete never sees the rows the insert adds).
    sm = SegmentMembership
    now = utcnow()
    new = matching.cte("matching")
    entering = (select(literal(segment_id), new.c.id, literal(now, sm.entered_at.type))
                .where(~exists().where(sm.segment_id == segment_id, sm.member_id == new.c.id)))
    inserted = (_insert(session).from_select(["segment_id", "member_id", "entered_at"], entering)
                .on_conflict_do_nothing(index_elements=["segment_id", "member_id"])
                .returning(sm.member_id).cte("entered"))
    deleted = (delete(sm).where(sm.segment_id == segment_id, in_scope(sm.member_id),
                                ~exists().where(new.c.id == sm.member_id))
               .returning(sm.member_id).cte("left"))
    rows = session.execute(union_all(select(literal(True).label("entered"), inserted.c.member_id),
                                     select(literal(False), deleted.c.member_id)))
    entered, left = [], []
    for is_entered, member_id in rows:
        (entered if is_entered else left).append(member_id)
    return entered, left


def _write_changes(session: Session, segment: Segment, entered: list[int], left: list[int]) -> None:
    info = {"segment_id": segment.id, "segment": segment.name}
    segment_rules = rules.rules_for_segment(session, segment.id)
    for member_id in entered:
        record_event(session, member_id, "segment.entered", info)
        rules.on_entered(session, segment_rules, member_id)
    for member_id in left:
        record_event(session, member_id, "segment.left", info)
        rules.on_left(session, segment_rules, member_id)


# -- per-member re-checks ------------------------------------------------------------------------------
@dataclass
class Compiled:
    """A stored segment ready for per-member evaluation."""

    segment: Segment
    depends_on: frozenset[str]
    predicate: Predicate


_cache: dict[tuple[int, object, date], Compiled | None] = {}  # None: the definition does not compile


def compiled_segments(session: Session, ctx: EvalContext) -> list[Compiled]:
    """Every segment that compiles, compiled for `ctx` (cached per definition version and day).

    A redefinition bumps `updated_at` of the segment and of every segment referencing it, so a cached
    predicate never evaluates an old definition. A segment whose stored definition no longer compiles is
    recorded once and left out, instead of failing (and retrying) every member's re-check.
    """
    global _cache
    segments = list(session.scalars(select(Segment).order_by(Segment.id)))
    stored = {s.id: s.definition for s in segments}
    fresh: dict[tuple[int, object, date], Compiled | None] = {}
    for segment in segments:
        key = (segment.id, segment.updated_at, ctx.today)
        if key in _cache:
            fresh[key] = _cache[key]
            continue
        try:
            with failures.translated(segment.id):
                node = parse(segment.definition)
                refs = resolve(node, stored.get, self_id=segment.id)
                predicate = compile_predicate(node, ctx, refs)
            fresh[key] = Compiled(segment, frozenset(segment.depends_on or ()), predicate)
        except Unevaluable as exc:
            fresh[key] = None
            failures.record(session, segment.id, exc.reason)
    _cache = fresh  # rebinding (not pruning in place) is safe while other job threads read the old one
    return [Compiled(s, hit.depends_on, hit.predicate) for s in segments
            if (hit := fresh[(s.id, s.updated_at, ctx.today)]) is not None]


def recheck_members(session: Session, changes: dict[int, set[str]], ctx: EvalContext | None = None) -> int:
    """Re-evaluate, for each member, only the segments their changes can affect; the number of moves."""
    ctx = ctx or context()
    compiled = compiled_segments(session, ctx)
    todo = {}
    for member_id, keys in changes.items():
        affected = compiled if ALL in keys else [c for c in compiled if c.depends_on & keys]
        if affected:
            todo[member_id] = affected
    if not todo:
        return 0
    states = load_states(session, todo)
    sm = SegmentMembership
    inside: dict[int, set[int]] = {}
    for mid, sid in session.execute(select(sm.member_id, sm.segment_id).where(sm.member_id.in_(list(todo)))):
        inside.setdefault(mid, set()).add(sid)
    moves = 0
    for member_id, affected in todo.items():
        state = states.get(member_id)
        if state is None:
            continue
        member_in = inside.get(member_id, set())
        for c in affected:
            want = c.predicate(state)
            if want and c.segment.id not in member_in:
                moves += enter(session, c.segment, member_id)
            elif not want and c.segment.id in member_in:
                moves += leave(session, c.segment, member_id)
    return moves


def enter(session: Session, segment: Segment, member_id: int) -> bool:
    """Put a member in a segment; True (and a segment.entered event, and the rules' tags) when new."""
    stmt = (_insert(session).values(segment_id=segment.id, member_id=member_id, entered_at=utcnow())
            .on_conflict_do_nothing(index_elements=["segment_id", "member_id"]).returning(SegmentMembership.member_id))
    if session.scalar(stmt) is None:
        return False
    record_event(session, member_id, "segment.entered", {"segment_id": segment.id, "segment": segment.name})
    rules.on_entered(session, rules.rules_for_segment(session, segment.id), member_id)
    return True


def leave(session: Session, segment: Segment, member_id: int) -> bool:
    """Take a member out of a segment; True (and a segment.left event) when they were in."""
    sm = SegmentMembership
    result = session.execute(delete(sm).where(sm.segment_id == segment.id, sm.member_id == member_id))
    if not result.rowcount:
        return False
    record_event(session, member_id, "segment.left", {"segment_id": segment.id, "segment": segment.name})
    rules.on_left(session, rules.rules_for_segment(session, segment.id), member_id)
    return True


def drop_member(session: Session, member_id: int) -> None:
    """Forget a merged-away member's memberships (the survivor is re-checked instead)."""
    session.execute(delete(SegmentMembership).where(SegmentMembership.member_id == member_id))
