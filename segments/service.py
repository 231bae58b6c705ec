"""Segments and tag rules: plain functions over a session (the caller owns the transaction)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from membership.tags import ensure_tag
from segments import counters
from config.queue import enqueue
from segments.clock import EvalContext, context
from segments.exceptions import InvalidDefinition, NotFound
from segments.graph import Refs, depends_on, event_leaves, relative_dates, resolve
from segments.language import Node, parse
from segments.materialise import definitions_loader
from segments.models import Segment, SegmentMembership, TagRule
from segments.idsets import count_and_sample


def compile_definition(session: Session, definition: object, self_id: int | None = None) -> tuple[Node, Refs]:
    """Parse a definition and resolve its segment references (InvalidDefinition on any fault)."""
    node = parse(definition)
    return node, resolve(node, definitions_loader(session), self_id=self_id)


def preview(session: Session, definition: object, *, sample: int = 20, ctx: EvalContext | None = None) -> tuple[int, list[int]]:
    """How many members a definition matches now, and a sample of their ids."""
    node, refs = compile_definition(session, definition)
    counters.ensure_filters(session, event_leaves(node, refs))
    return count_and_sample(session, node, ctx or context(), refs, sample)


def create_segment(session: Session, *, name: str, definition: object) -> Segment:
    """Save a segment; its first full refresh runs in the background once this transaction commits."""
    from segments.jobs import refresh_segment_job

    node, refs = compile_definition(session, definition)
    counters.ensure_filters(session, event_leaves(node, refs))
    segment = Segment(name=name, definition=definition, depends_on=depends_on(node, refs),
                      relative_dates=relative_dates(node, refs))
    session.add(segment)
    session.flush()
    enqueue(refresh_segment_job, segment.id, session=session)
    return segment


def get_segment(session: Session, segment_id: int) -> Segment:
    """The segment with this id, or NotFound."""
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} not found")
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
    from segments.jobs import apply_rule_to_members_job

    if (segment_id is None) == (not keywords):
        raise InvalidDefinition("$", "a tag rule needs either segment_id or keywords, not both")
    if segment_id is not None:
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


def list_tag_rules(session: Session) -> list[TagRule]:
    """Every tag rule, by id."""
    return list(session.scalars(select(TagRule).order_by(TagRule.id)))
