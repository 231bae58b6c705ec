"""Admin API of the intake: the inbox (failed events and their replay), channel codes, OA QR codes, auto-replies."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from membership.access import Principal, require
from membership.models import Role
from webhooks import inbox_admin, service, views
from webhooks.inbox import inbox_request_session
from webhooks.models import InboxStatus
from webhooks.schemas import (
    AutoReplyIn, AutoReplyOut, AutoReplyPage, ChannelCodeIn, ChannelCodeOut, ChannelCodePage, InboxOut, InboxPage,
    OAQrCodeIn, OAQrCodeOut, OAQrCodePage,
)

router = APIRouter(prefix="/api/v1", tags=["webhooks"], responses=ERROR_RESPONSES)


def _own_store(who: Principal) -> int | None:
    # A store manager's codes are their own store's; admins and marketers see and make every store's.
    return who.store_id if who.role is Role.store_manager else None


@router.get("/inbox", response_model=InboxPage)
def list_inbox(status: InboxStatus | None = None, source: str | None = None, cursor: str | None = None,
               limit: int = Query(50, ge=1, le=500), _: Principal = Depends(require())):
    """Stored callbacks, oldest first, filtered by status (failed, unhandled…) and source (admin only)."""
    rows = inbox_admin.list_events(status=status, source=source, after_id=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda r: r.id)
    return InboxPage(items=[InboxOut.model_validate(r, from_attributes=True) for r in page], next_cursor=next_cursor)


@router.post("/inbox/{inbox_id}/replay", response_model=InboxOut)
def replay_inbox(inbox_id: DbId, session: Session = inbox_request_session, _: Principal = Depends(require())):
    """Handle a failed or unhandled event again, from its first attempt (admin only)."""
    return InboxOut.model_validate(inbox_admin.replay(session, inbox_id), from_attributes=True)


@router.post("/channel-codes", response_model=ChannelCodeOut, status_code=201)
def create_channel_code(body: ChannelCodeIn, session: Session = request_session,
                        who: Principal = Depends(require(Role.marketer, Role.store_manager))):
    """Create a 联系我 code in WeCom; arrivals through it get its store, staff, tags and welcome text.

    A store manager's code is for their own store and its staff, with tags that are WeCom corp tags already.
    """
    code = service.create_channel_code(
        session, body, within_store=_own_store(who),
        may_create_tags=who.allows(Role.marketer))
    return views.channel_codes_out(session, [code])[0]


@router.get("/channel-codes", response_model=ChannelCodePage)
def list_channel_codes(cursor: str | None = None, limit: int = Query(50, ge=1, le=200),
                       session: Session = request_session,
                       who: Principal = Depends(require(Role.marketer, Role.store_manager))):
    """Channel codes, oldest first, a page at a time; a store manager sees their own store's."""
    rows = service.list_channel_codes(session, within_store=_own_store(who), after_id=decode_cursor(cursor),
                                      limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda c: c.id)
    return ChannelCodePage(items=views.channel_codes_out(session, page), next_cursor=next_cursor)


@router.post("/oa-qrcodes", response_model=OAQrCodeOut, status_code=201)
def create_oa_qrcode(body: OAQrCodeIn, session: Session = request_session,
                     _: Principal = Depends(require(Role.marketer))):
    """Create an official-account QR code whose followers are attributed to a store and staff member."""
    qr = service.create_oa_qrcode(session, body)
    return views.oa_qrcodes_out(session, [qr])[0]


@router.get("/oa-qrcodes", response_model=OAQrCodePage)
def list_oa_qrcodes(cursor: str | None = None, limit: int = Query(50, ge=1, le=200),
                    session: Session = request_session, _: Principal = Depends(require(Role.marketer))):
    """Official-account QR codes, oldest first, a page at a time."""
    rows = service.list_oa_qrcodes(session, after_id=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda q: q.id)
    return OAQrCodePage(items=views.oa_qrcodes_out(session, page), next_cursor=next_cursor)


@router.post("/auto-replies", response_model=AutoReplyOut, status_code=201)
def create_auto_reply(body: AutoReplyIn, session: Session = request_session,
                      _: Principal = Depends(require(Role.marketer))):
    """Add a keyword auto-reply rule for official-account and mini-program text messages."""
    rule = service.create_auto_reply(session, body)
    return views.auto_reply_out(rule)


@router.get("/auto-replies", response_model=AutoReplyPage)
def list_auto_replies(cursor: str | None = None, limit: int = Query(50, ge=1, le=200),
                      session: Session = request_session, _: Principal = Depends(require(Role.marketer))):
    """Keyword auto-reply rules, oldest first, a page at a time."""
    rows = service.list_auto_replies(session, after_id=decode_cursor(cursor), limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda r: r.id)
    return AutoReplyPage(items=[views.auto_reply_out(r) for r in page], next_cursor=next_cursor)
