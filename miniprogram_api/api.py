"""Consumer API, member card: log in (code2session), bind a verified phone, the card, subscribe grants."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clients import mp_client
from bot.errors import PermanentAPIError
from campaigns.bookings import service as bookings
from campaigns.bookings.views import booking_out
from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.errors import Upstream
from membership import consents
from membership.identity import IdentityIn, bind, live_member, resolve
from membership.models import Identity, IdentityType, Store, Tag
from membership.phones import mask_phone
from membership.tags import member_tags
from membership.timeline import record_event
from miniprogram_api import cards
from miniprogram_api.auth import current_member, issue_token
from miniprogram_api.exceptions import InvalidInput, Unauthorized
from miniprogram_api.schemas import CardOut, CodeIn, PhoneOut, SessionOut, StoreRef, SubscriptionsIn, SubscriptionsOut

log = logging.getLogger(__name__)
router = APIRouter(prefix="/mp/v1", tags=["mini-program"], responses=ERROR_RESPONSES)

BAD_CODE = {40029, 40163}  # invalid or expired; already used (Tencent's errcodes for a wx.login / phone code)


@router.post("/session", response_model=SessionOut)
def login(body: CodeIn, session: Session = request_session):
    """Exchange a wx.login code for a session token; binds the openid (and unionid) into one member."""
    client = mp_client()
    try:
        answer = client.code2session(body.code)
    except PermanentAPIError as exc:
        if exc.errcode in BAD_CODE:
            raise Unauthorized(f"login code refused by WeChat (errcode {exc.errcode}): call wx.login again") from None
        raise
    openid, unionid = answer.get("openid"), answer.get("unionid")
    if not openid:
        raise Upstream("code2session answered no openid")
    wanted = [IdentityIn(IdentityType.mp_openid.value, openid, client.creds.app_id)]
    if unionid:
        wanted.append(IdentityIn(IdentityType.unionid.value, unionid))
    member = bind(session, wanted).member
    record_event(session, member.id, "mp.session", {"unionid": bool(unionid)})
    # The session_key is not kept: phone numbers come by code (getuserphonenumber), nothing is decrypted here.
    return SessionOut(token=issue_token(member.id, session=session, openid=openid), member_id=member.id)


def _linking_identities(session: Session, member_id: int) -> list[IdentityIn]:
    rows = session.scalars(select(Identity).where(Identity.member_id == member_id, Identity.type != "phone"))
    return [IdentityIn(r.type, r.value, r.scope, r.verified) for r in rows]


@router.post("/phone", response_model=PhoneOut)
def bind_phone(body: CodeIn, member_id: int = Depends(current_member), session: Session = request_session):
    """Bind the verified phone behind a getPhoneNumber code; a member already holding it is merged (DESIGN)."""
    client = mp_client()
    try:
        info = client.get_user_phone_number(body.code).get("phone_info") or {}
    except PermanentAPIError as exc:
        if exc.errcode in BAD_CODE:
            raise InvalidInput(f"phone code refused by WeChat (errcode {exc.errcode}): ask again") from None
        raise
    pure, country = info.get("purePhoneNumber"), info.get("countryCode") or "86"
    if not pure or (info.get("watermark") or {}).get("appid", client.creds.app_id) != client.creds.app_id:
        raise Upstream("getuserphonenumber answered no phone of this mini-program")
    phone = IdentityIn(IdentityType.phone.value, f"+{country}{pure}", verified=True)
    result = bind(session, [*_linking_identities(session, member_id), phone])
    me = live_member(session, member_id)
    holder = resolve(session, phone)
    if holder is None or holder.id != me.id:
        # Both carry a different verified phone: never merged automatically. Answered, not raised, so that the
        # transaction commits the review row bind() wrote for the brand.
        return JSONResponse({"detail": "this phone number is bound to another member; the brand will review it"},
                            status_code=409)
    log.info("member %s: phone bound (%d merged)", me.id, len(result.merged))
    return PhoneOut(phone_masked=mask_phone(phone.normalized().value))


@router.get("/me", response_model=CardOut)
def card(member_id: int = Depends(current_member), session: Session = request_session):
    """The member card: name, store, the tags meant for the consumer, bookings and orders."""
    me = live_member(session, member_id)
    store = session.get(Store, me.store_id) if me.store_id else None
    phone = session.scalar(select(Identity.value).where(Identity.member_id == me.id, Identity.type == "phone",
                                                        Identity.verified).order_by(Identity.id).limit(1))
    tags: list[Tag] = [t for t in member_tags(session, me.id) if t.visible_to_member]
    return CardOut(member_id=me.id, name=me.name, store=StoreRef(code=store.code, name=store.name) if store else None,
                   tags=[t.name for t in tags], phone_masked=mask_phone(phone) if phone else None,
                   bookings=[booking_out(session, b) for b in bookings.member_bookings(session, me.id)],
                   orders=cards.orders_of(session, me.id))


@router.post("/subscriptions", response_model=SubscriptionsOut)
def subscriptions(body: SubscriptionsIn, member_id: int = Depends(current_member),
                  session: Session = request_session):
    """Record what wx.requestSubscribeMessage answered: each `accept` allows one message of that template."""
    remaining = {}
    for template_id, answer in body.templates.items():
        if not 1 <= len(template_id) <= 64:
            raise InvalidInput("templates: a template id is 1 to 64 characters")
        if answer == "accept":
            remaining[template_id] = consents.grant(session, member_id=member_id, template_id=template_id)
        else:
            remaining[template_id] = consents.remaining(session, member_id=member_id, template_id=template_id)
    return SubscriptionsOut(remaining=remaining)
