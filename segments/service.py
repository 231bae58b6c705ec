"""Segments and tag rules: plain functions over a session (the caller owns the transaction)."""
from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.database import get_engine, session_scope
from config.queue import enqueue
from config.types import utcnow
from membership.models import Tag
from membership.tags import ensure_tag
from segments import counters, failures, materialise, rounds, rules, usage
from segments.clock import EvalContext, context
from segments.exceptions import InUse, InvalidDefinition, NotFound, Unevaluable
from segments.graph import Refs, depends_on, direct_references, event_leaves, relative_dates, resolve
from segments.idsets import count_and_sample
from segments.language import Node, parse
from segments.materialise import definitions_loader
from segments.models import Segment, SegmentMembership, SegmentReference, TagRule

UNCHANGED = object()  # update_segment: the definition is left as it is
GRAPH_LOCK = 0x5359_5345_4753  # advisory lock serialising changes to the reference graph (PostgreSQL)


def compile_definition(session: Session, definition: object, self_id: int | None = None) -> tuple[Node, Refs]:
    """Parse a definition and resolve its segment references (InvalidDefinition on any fault)."""
    node = parse(definition)
    return node, resolve(node, definitions_loader(session), self_id=self_id)


def preview(session: Session, definition: object, *, sample: int = 20,
            ctx: EvalContext | None = None) -> tuple[int, list[int]]:
    """How many members a definition matches now, and a sample of their ids."""
    node, refs = compile_definition(session, definition)
    with failures.translated():
        counters.ensure_filters(session, event_leaves(node, refs))
        return count_and_sample(session, node, ctx or context(), refs, sample)


def _lock_graph(session: Session) -> None:
    # Two redefinitions that each add a reference to the other would both pass a cycle check made
    # against the other's old definition; SQLite writers are serial already (BEGIN IMMEDIATE).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(GRAPH_LOCK)))


def _set_references(session: Session, segment_id: int, node: Node) -> None:
    session.execute(delete(SegmentReference).where(SegmentReference.segment_id == segment_id))
    rows = [{"segment_id": segment_id, "referenced_id": sid} for sid in sorted(direct_references(node))]
    if rows:
        session.execute(insert(SegmentReference), rows)


def _refresh_after_commit(session: Session, segment_ids: list[int]) -> None:
    for sid in segment_ids:
        enqueue(refresh_segment_job, sid, session=session)


def _define(segment: Segment, definition: object, node: Node, refs: Refs) -> None:
    segment.definition = definition
    segment.depends_on, segment.relative_dates = depends_on(node, refs), relative_dates(node, refs)
    segment.refresh_error = None
    segment.updated_at = utcnow()  # versions the definition: the per-event compile cache is keyed by it


def create_segment(session: Session, *, name: str, definition: object) -> Segment:
    """Save a segment; its first full refresh runs in the background once this transaction commits."""
    _lock_graph(session)
    node, refs = compile_definition(session, definition)
    counters.ensure_filters(session, event_leaves(node, refs))
    segment = Segment(name=name, definition=definition, depends_on=depends_on(node, refs),
                      relative_dates=relative_dates(node, refs))
    session.add(segment)
    session.flush()
    _set_references(session, segment.id, node)
    _refresh_after_commit(session, [segment.id])
    return segment


def update_segment(session: Session, *, segment_id: int, name: str | None = None,
                   definition: object = UNCHANGED) -> Segment:
    """Rename and/or redefine a segment; a redefinition re-validates and refreshes every segment referencing it."""
    _lock_graph(session)
    segment = get_segment(session, segment_id)
    if name is not None:
        segment.name = name
    if definition is UNCHANGED:
        session.flush()
        return segment
    node, refs = compile_definition(session, definition, self_id=segment.id)  # a cycle through itself is refused
    counters.ensure_filters(session, event_leaves(node, refs))
    load = definitions_loader(session)
    redefined = {segment.id: definition}
    referencing = usage.referencing(session, segment.id)
    # Segments referencing this one evaluate its new definition too: each must stay valid (size, depth),
    # and what they depend on changes with it.
    for other in referencing:
        try:
            other_node = parse(other.definition)
            other_refs = resolve(other_node, lambda sid: redefined[sid] if sid in redefined else load(sid),
                                 self_id=other.id)
        except InvalidDefinition as exc:
            if _was_valid(other, load):
                raise InvalidDefinition("$", f"segment {other.id} «{other.name}» references this one and would "
                                             f"become invalid: {exc}") from None
            continue  # invalid before this change already: its refresh records why
        _define(other, other.definition, other_node, other_refs)
    _define(segment, definition, node, refs)
    _set_references(session, segment.id, node)
    session.flush()
    _refresh_after_commit(session, [segment.id, *(s.id for s in referencing)])
    return segment


def _was_valid(segment: Segment, load) -> bool:
    try:
        resolve(parse(segment.definition), load, self_id=segment.id)
    except InvalidDefinition:
        return False
    return True


def delete_segment(session: Session, *, segment_id: int) -> None:
    """Delete a segment and its membership; InUse while a segment, a tag rule or a registered user uses it."""
    _lock_graph(session)
    segment = get_segment(session, segment_id)
    users = usage.users_of(session, segment_id)
    if users:
        raise InUse(f"segment {segment_id} is in use by {', '.join(users)}")
    try:
        with session.begin_nested():
            session.delete(segment)
            session.flush()
    except IntegrityError:  # a user that registered nothing in `usage` but holds a foreign key
        raise InUse(f"segment {segment_id} is in use") from None


def get_segment(session: Session, segment_id: int) -> Segment:
    """The segment with this id, or NotFound."""
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} not found")
    return segment


def request_refresh(session: Session, segment_id: int) -> Segment:
    """Queue a full refresh of a segment once this transaction commits (its `refreshed_at` moves when done)."""
    segment = get_segment(session, segment_id)
    _refresh_after_commit(session, [segment.id])
    return segment


def list_segments(session: Session) -> list[Segment]:
    """Every segment, by id."""
    return list(session.scalars(select(Segment).order_by(Segment.id)))


def sizes(session: Session, segment_ids: list[int]) -> dict[int, int]:
    """Current member count of each segment (per-event updates keep it live between refreshes)."""
    sm = SegmentMembership
    rows = session.execute(select(sm.segment_id, func.count()).where(sm.segment_id.in_(segment_ids))
                           .group_by(sm.segment_id))
    return {sid: 0 for sid in segment_ids} | dict(rows.all())


def members_page(session: Session, segment_id: int, *, after_id: int | None, limit: int) -> list[SegmentMembership]:
    """Members of a segment by member id, from `after_id` on (a keyset page)."""
    get_segment(session, segment_id)
    sm = SegmentMembership
    q = select(sm).where(sm.segment_id == segment_id)
    if after_id is not None:
        q = q.where(sm.member_id > after_id)
    return list(session.scalars(q.order_by(sm.member_id).limit(limit)))


def create_tag_rule(session: Session, *, name: str, tag: str, group: str = "", segment_id: int | None = None,
                    keywords: list[str] | None = None, remove_on_leave: bool = False,
                    apply_to_current: bool = True) -> TagRule:
    """Save an auto-tagging rule; with `apply_to_current`, members already in the segment are tagged too."""
    if (segment_id is None) == (not keywords):
        raise InvalidDefinition("$", "a tag rule needs either segment_id or keywords, not both")
    if segment_id is not None:
        _lock_graph(session)  # a segment being deleted is either gone (404) or sees this rule (409)
        get_segment(session, segment_id)
    if keywords is not None:
        keywords = sorted({k.strip() for k in keywords if k.strip()})
        if not keywords:
            raise InvalidDefinition("$.keywords", "needs at least one non-blank keyword")
    rule = TagRule(name=name, tag_id=ensure_tag(session, tag, group).id, segment_id=segment_id, keywords=keywords,
                   remove_on_leave=remove_on_leave)
    session.add(rule)
    session.flush()
    if segment_id is not None and apply_to_current:
        enqueue(apply_rule_to_members_job, rule.id, queue="low", session=session)
    return rule


def list_tag_rules(session: Session, *, after_id: int | None = None, limit: int | None = None) -> list[TagRule]:
    """Tag rules by id, from `after_id` on (a keyset page when `limit` is given)."""
    q = select(TagRule).order_by(TagRule.id)
    if after_id is not None:
        q = q.where(TagRule.id > after_id)
    return list(session.scalars(q if limit is None else q.limit(limit)))


def rule_tags(session: Session, rules: list[TagRule]) -> dict[int, Tag]:
    """The tag of each rule, by rule id, in one query."""
    ids = {r.tag_id for r in rules}
    tags = {t.id: t for t in session.scalars(select(Tag).where(Tag.id.in_(ids)))} if ids else {}
    return {r.id: tags[r.tag_id] for r in rules if r.tag_id in tags}


# -- jobs these services enqueue -----------------------------------------------------------------------
def refresh_segment_job(segment_id: int) -> None:
    """Job: fully refresh one segment (a no-op once deleted); a failure no retry can fix is recorded, not raised."""
    try:
        if get_engine().dialect.name == "sqlite":
            # SQLite has one write lock for the whole database: hold it one chunk of members at a time.
            materialise.refresh_in_chunks(rounds.job_scope, segment_id)
            return
        with rounds.job_scope() as session:
            if session.get(Segment, segment_id) is not None:
                materialise.refresh_segment(session, segment_id)
    except NotFound:  # deleted between the two reads
        return
    except Unevaluable as exc:  # the same statement would fail the same way on every retry and every night
        with failures.translated(segment_id), session_scope() as session:
            failures.record(session, segment_id, exc.reason)


def apply_rule_to_members_job(rule_id: int) -> int:
    """Job: tag everyone already in a new rule's segment."""
    with failures.translated(), rounds.job_scope() as session:
        rule = session.get(TagRule, rule_id)
        if rule is None or rule.segment_id is None:
            return 0
        sm = SegmentMembership
        ids = session.scalars(select(sm.member_id).where(sm.segment_id == rule.segment_id))
        return sum(rules.apply(session, rule, mid) for mid in list(ids))
