"""Admin API, segments slice (admin, marketer): preview, create, read, change, delete, members, refresh; tag rules."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from config.api_errors import ERROR_RESPONSES, error_response
from config.database import request_session, session_scope
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from membership.access import Principal, require
from membership.exceptions import InvalidInput
from membership.models import Role, Tag
from segments import service
from segments.exceptions import NotFound
from segments.materialise import refresh_in_chunks, refresh_segment
from segments.models import Segment, TagRule
from segments.schemas import (
    PreviewIn, PreviewOut, SegmentIn, SegmentMemberOut, SegmentMembersPage, SegmentOut, SegmentPatch, TagRuleIn,
    TagRuleOut,
)

router = APIRouter(prefix="/api/v1", tags=["segments"], responses=ERROR_RESPONSES)
marketer = require(Role.marketer)

def _out(segment: Segment, size: int) -> SegmentOut:
    return SegmentOut(id=segment.id, name=segment.name, definition=segment.definition, size=size,
                      refreshed_at=segment.refreshed_at, last_refresh_ms=segment.last_refresh_ms,
                      last_entered=segment.last_entered, last_left=segment.last_left,
                      relative_dates=segment.relative_dates, depends_on=segment.depends_on or [],
                      refresh_error=segment.refresh_error)


@router.post("/segments/preview", response_model=PreviewOut)
def preview(body: PreviewIn, session: Session = request_session, _: Principal = Depends(marketer)):
    """Count and sample the members a definition matches, without saving it."""
    count, sample = service.preview(session, body.definition)
    return PreviewOut(count=count, sample=sample)


@router.post("/segments", response_model=SegmentOut, status_code=201)
def create_segment(body: SegmentIn, session: Session = request_session, _: Principal = Depends(marketer)):
    """Save a segment; its membership is computed in the background (see `refreshed_at`)."""
    segment = service.create_segment(session, name=body.name, definition=body.definition)
    return _out(segment, 0)


@router.get("/segments", response_model=list[SegmentOut])
def list_segments(session: Session = request_session, _: Principal = Depends(marketer)):
    """Every segment with its current size and last refresh."""
    segments = service.list_segments(session)
    sizes = service.sizes(session, [s.id for s in segments])
    return [_out(s, sizes[s.id]) for s in segments]


@router.get("/segments/{segment_id}", response_model=SegmentOut)
def get_segment(segment_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """One segment: current size, when it was last fully refreshed and how long that took."""
    segment = service.get_segment(session, segment_id)
    return _out(segment, service.sizes(session, [segment.id])[segment.id])


@router.patch("/segments/{segment_id}", response_model=SegmentOut)
def update_segment(segment_id: DbId, body: SegmentPatch, session: Session = request_session,
                   _: Principal = Depends(marketer)):
    """Rename and/or redefine a segment; a redefinition refreshes it, and the segments using it, in the background."""
    given = body.model_fields_set
    if not given & {"name", "definition"}:
        raise InvalidInput("give a name, a definition or both")
    if "name" in given and body.name is None:
        raise InvalidInput("name: a segment keeps a name")
    changes = {"definition": body.definition} if "definition" in given else {}
    segment = service.update_segment(session, segment_id=segment_id, name=body.name, **changes)
    return _out(segment, service.sizes(session, [segment.id])[segment.id])


@router.delete("/segments/{segment_id}", status_code=204)
def delete_segment(segment_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """Delete a segment; 409 (naming them) while another segment, a tag rule or a campaign uses it."""
    service.delete_segment(session, segment_id=segment_id)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/members", response_model=SegmentMembersPage)
def segment_members(segment_id: DbId, cursor: str | None = None, limit: int = Query(100, ge=1, le=1000),
                    session: Session = request_session, _: Principal = Depends(marketer)):
    """The segment's members by id, a page at a time."""
    rows = service.members_page(session, segment_id, after_id=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda r: r.member_id)
    return SegmentMembersPage(items=[SegmentMemberOut(id=r.member_id, entered_at=r.entered_at) for r in page],
                              next_cursor=next_cursor)


@router.post("/segments/{segment_id}/refresh", response_model=SegmentOut,
             responses={503: error_response("The database failed the refresh; a retry may succeed")})
def refresh(segment_id: DbId, session: Session = request_session, _: Principal = Depends(marketer)):
    """Fully refresh a segment now; the answer carries the diff and the duration."""
    service.get_segment(session, segment_id)
    if session.get_bind().dialect.name == "sqlite":
        # The request's transaction would hold SQLite's one write lock for the whole refresh: end it here
        # and let the refresh take the lock one chunk of members at a time.
        session.commit()
        result = refresh_in_chunks(session_scope, segment_id)
        if result is None:
            raise NotFound(f"segment {segment_id} not found")
        session.expire_all()
    else:
        result = refresh_segment(session, segment_id)
    return _out(service.get_segment(session, segment_id), result.size)


def _rule_out(session: Session, rule: TagRule) -> TagRuleOut:
    tag = session.get(Tag, rule.tag_id)
    return TagRuleOut(id=rule.id, name=rule.name, tag=tag.name, group=tag.group_name, segment_id=rule.segment_id,
                      keywords=rule.keywords, remove_on_leave=rule.remove_on_leave, active=rule.active)


@router.post("/tag-rules", response_model=TagRuleOut, status_code=201)
def create_tag_rule(body: TagRuleIn, session: Session = request_session, _: Principal = Depends(marketer)):
    """An auto-tagging rule: on entering a segment, or on a message with one of the keywords."""
    rule = service.create_tag_rule(session, **body.model_dump())
    return _rule_out(session, rule)


@router.get("/tag-rules", response_model=list[TagRuleOut])
def list_tag_rules(session: Session = request_session, _: Principal = Depends(marketer)):
    """Every auto-tagging rule."""
    return [_rule_out(session, r) for r in service.list_tag_rules(session)]
