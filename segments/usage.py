"""What uses a segment, so that a segment in use is not deleted; higher floors register what they hold.

`uses(fn)`: fn(session, segment_id) -> list[str], one short description per user of the segment
(`campaign 7 «双十二»`). Campaigns register their audiences here; segments never imports them.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from segments.models import Segment, SegmentReference, TagRule

USERS: list[Callable[[Session, int], list[str]]] = []


def uses(fn: Callable[[Session, int], list[str]]) -> Callable[[Session, int], list[str]]:
    """Register `fn(session, segment_id)` naming what of a higher floor uses the segment."""
    if fn not in USERS:
        USERS.append(fn)
    return fn


def users_of(session: Session, segment_id: int) -> list[str]:
    """Everything that uses a segment: segments whose definition references it, tag rules, registered users."""
    ref = SegmentReference
    found = [f"segment {s.id} «{s.name}»" for s in session.scalars(
        select(Segment).join(ref, ref.segment_id == Segment.id).where(ref.referenced_id == segment_id)
        .order_by(Segment.id))]
    found += [f"tag rule {r.id} «{r.name}»" for r in session.scalars(
        select(TagRule).where(TagRule.segment_id == segment_id).order_by(TagRule.id))]
    for fn in USERS:
        found += fn(session, segment_id)
    return found


def referencing(session: Session, segment_id: int) -> list[Segment]:
    """Every segment whose definition reaches `segment_id` through references (directly or not), by id."""
    edges: dict[int, list[int]] = {}
    for sid, referenced in session.execute(select(SegmentReference.segment_id, SegmentReference.referenced_id)):
        edges.setdefault(referenced, []).append(sid)
    found: set[int] = set()
    todo = [segment_id]
    while todo:
        for sid in edges.get(todo.pop(), ()):
            if sid not in found and sid != segment_id:
                found.add(sid)
                todo.append(sid)
    if not found:
        return []
    return list(session.scalars(select(Segment).where(Segment.id.in_(found)).order_by(Segment.id)))
