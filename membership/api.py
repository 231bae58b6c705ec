"""Admin API, membership slice: tokens, stores, staff, members, timeline, tags, merge reviews."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.inputs import DbId, Timestamp
from config.pagination import decode_cursor, page_of
from membership import service, tokens
from membership.access import Principal, current_principal, require, visible_member, visible_members
from membership.identity import IdentityIn
from membership.models import Member, MergeReview, Role
from membership.schemas import (
    EventOut, MemberOut, MemberPage, MergeReviewOut, StaffIn, StaffOut, StoreIn, StoreOut, TagIn, TimelineOut,
    TokenIn, TokenInfo, TokenOut,
)
from membership.tags import add_member_tag, remove_member_tag
from membership.timeline import timeline
from membership.views import member_out, members_out

router = APIRouter(prefix="/api/v1", tags=["membership"], responses=ERROR_RESPONSES)


# -- tokens, stores, staff -----------------------------------------------------------------------------
@router.post("/tokens", response_model=TokenOut, status_code=201)
def create_token(body: TokenIn, session: Session = request_session, _: Principal = Depends(require())):
    """Issue a bearer token for a role, optionally expiring (admin only); the secret is shown this once."""
    row, secret = tokens.create_token(session, **body.model_dump())
    return TokenOut(id=row.id, token=secret)


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(session: Session = request_session, _: Principal = Depends(require())):
    """Every issued token with its scope and state, never its secret (admin only)."""
    return [tokens.token_info(t) for t in tokens.list_tokens(session)]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: DbId, session: Session = request_session, _: Principal = Depends(require())):
    """Revoke a token: its next request is 401 (admin only)."""
    tokens.revoke_token(session, token_id=token_id)
    return Response(status_code=204)


@router.post("/stores", response_model=StoreOut, status_code=201)
def create_store(body: StoreIn, session: Session = request_session, _: Principal = Depends(require())):
    """Create a store (admin only)."""
    store = service.create_store(session, **body.model_dump())
    return StoreOut.model_validate(store, from_attributes=True)


@router.get("/stores", response_model=list[StoreOut])
def list_stores(session: Session = request_session, who: Principal = Depends(current_principal)):
    """Every store for admins and marketers; one's own store for everybody else."""
    own = None if who.allows(Role.marketer) else (who.store_id or -1)
    return [StoreOut.model_validate(s, from_attributes=True) for s in service.list_stores(session, own)]


@router.post("/staff", response_model=StaffOut, status_code=201)
def create_staff(body: StaffIn, session: Session = request_session,
                 who: Principal = Depends(require(Role.store_manager))):
    """Create or update a staff member (store managers: only in, and only staff already of, their own store)."""
    store = service.get_store_by_code(session, body.store)
    within = who.store_id if who.role is Role.store_manager else None
    staff = service.upsert_staff(session, userid=body.userid, name=body.name, store_id=store.id, role=body.role,
                                 within_store=within)
    return _staff_out(staff)


@router.get("/staff", response_model=list[StaffOut])
def list_staff(session: Session = request_session,
               who: Principal = Depends(require(Role.marketer, Role.store_manager))):
    """Staff of every store, or of the store manager's own."""
    own = who.store_id if who.role is Role.store_manager else None
    return [_staff_out(s) for s in service.list_staff(session, own)]


def _staff_out(staff) -> StaffOut:
    return StaffOut(userid=staff.userid, name=staff.name, store=staff.store.code if staff.store else None,
                    role=staff.role, active=staff.active, source=staff.source)


# -- members ------------------------------------------------------------------------------------------
@router.get("/members", response_model=MemberPage)
def list_members(
    external_userid: str | None = None, openid: str | None = None, unionid: str | None = None,
    phone: str | None = None, store: str | None = None, tag: str | None = None,
    name: str | None = Query(None, max_length=120), cursor: str | None = None, limit: int = Query(50, ge=1, le=200),
    session: Session = request_session, who: Principal = Depends(current_principal),
):
    """Look members up by any identity, store, tag or a part of the name; a page at a time."""
    idents = [IdentityIn(t, v) for t, v in (("wecom_external", external_userid), ("unionid", unionid),
                                            ("phone", phone)) if v]
    store_id = service.get_store_by_code(session, store).id if store else None
    rows = service.find_members(session, identities=idents, openid=openid, store_id=store_id, tag=tag, name=name,
                                visible=visible_members(who), after_id=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda m: m.id)
    return MemberPage(items=members_out(session, page), next_cursor=next_cursor)


def _visible_member(session: Session, who: Principal, member_id: int) -> Member:
    return visible_member(session, who, member_id)


@router.get("/members/{member_id}", response_model=MemberOut)
def get_member(member_id: DbId, session: Session = request_session, who: Principal = Depends(current_principal)):
    """One member's profile; a merged member answers with `merged_into`."""
    return member_out(session, _visible_member(session, who, member_id))


@router.get("/members/{member_id}/timeline", response_model=TimelineOut)
def get_timeline(member_id: DbId, limit: int = Query(50, ge=1, le=500), before: Timestamp | None = None,
                 session: Session = request_session, who: Principal = Depends(current_principal)):
    """A member's events, newest first; `before` (ISO 8601 with an offset) pages back in time."""
    member = _visible_member(session, who, member_id)
    events = timeline(session, member.id, limit=limit, before=before)
    return TimelineOut(items=[EventOut(type=e.type, at=e.at, data=e.data) for e in events])


@router.post("/members/{member_id}/tags", response_model=MemberOut, status_code=201)
def add_tag(member_id: DbId, body: TagIn, session: Session = request_session,
            who: Principal = Depends(current_principal)):
    """Tag a member (locally now; WeCom's mark_tag follows through the registered tag listener).

    Store managers and staff apply tags of the catalogue; a new tag becomes a WeCom corp tag, which is
    for admins and marketers to create.
    """
    member = _visible_member(session, who, member_id)
    add_member_tag(session, member=member, name=body.name, group=body.group, may_create=who.allows(Role.marketer),
                   source=f"api:{who.name}", visible_to_member=body.visible_to_member)
    return member_out(session, member)


@router.delete("/members/{member_id}/tags/{name}", response_model=MemberOut)
def remove_tag(member_id: DbId, name: str, group: str = "", session: Session = request_session,
               who: Principal = Depends(current_principal)):
    """Take a tag off a member."""
    member = _visible_member(session, who, member_id)
    remove_member_tag(session, member_id=member.id, name=name, group=group, source=f"api:{who.name}")
    return member_out(session, member)


@router.get("/merge-reviews", response_model=list[MergeReviewOut])
def list_merge_reviews(status: str = "open", session: Session = request_session,
                       _: Principal = Depends(require())):
    """Pairs that look like one person but were not merged automatically (admin only)."""
    rows = session.scalars(select(MergeReview).where(MergeReview.status == status).order_by(MergeReview.id))
    return [MergeReviewOut.model_validate(r, from_attributes=True) for r in rows]
