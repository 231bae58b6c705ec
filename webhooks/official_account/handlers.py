"""Official-account events and messages: follows (with Siyu's QR scenes), scans, unfollows, text."""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clients import oa_client
from bot.errors import PermanentAPIError
from config.queue import enqueue
from membership.identity import IdentityIn, bind
from membership.models import Member
from membership.timeline import record_event
from webhooks import registry
from webhooks.dispatch import Event, handles
from webhooks.intake import credentials
from webhooks.models import OAQrCode
from webhooks.replies import find_rule, keywords, send_custom_reply

log = logging.getLogger(__name__)
SOURCE = "official_account"


def _openid_identity(source: str, openid: str) -> IdentityIn:
    kind = "oa_openid" if source == SOURCE else "mp_openid"
    return IdentityIn(kind, openid, scope=credentials(source).app_id)


def follower(session: Session, ev: Event, *, fetch: bool) -> Member:
    """The member behind the sender, bound with the unionid the API reports when `fetch`."""
    openid = ev.require("FromUserName")
    identities = [_openid_identity(ev.source, openid)]
    name = None
    if fetch:
        try:
            info = oa_client().get_user_info(openid)
        except PermanentAPIError as exc:
            log.info("follower %s: user info unavailable (%s)", openid, exc)
            info = {}
        if info.get("unionid"):
            identities.append(IdentityIn("unionid", info["unionid"]))
        name = info.get("nickname") or None
    return bind(session, identities, name=name).member


def _scene(ev: Event) -> str:
    key = ev.get("EventKey")
    return key.removeprefix("qrscene_") if ev.get("Event").lower() == "subscribe" else key


def _attribute(session: Session, member: Member, scene: str) -> dict:
    qr = session.scalar(select(OAQrCode).where(OAQrCode.scene == scene)) if scene else None
    if qr is None:
        return {}
    if qr.store_id and not member.store_id:
        member.store_id = qr.store_id  # the first store a customer came through stays their home store
    return {"qrcode": qr.id, "store_id": qr.store_id, "staff": qr.staff_userid}


@handles(SOURCE, "event", "subscribe")
def subscribed(session: Session, ev: Event) -> None:
    """Followed the account, maybe by scanning a QR code (EventKey qrscene_…)."""
    member = follower(session, ev, fetch=True)
    scene = _scene(ev)
    record_event(session, member.id, "oa.subscribed", {"scene": scene or None, **_attribute(session, member, scene)},
                 at=ev.at, dedupe_key=ev.key("oa.subscribed"))


@handles(SOURCE, "event", "scan")
def scanned(session: Session, ev: Event) -> None:
    """A follower scanned a QR code of the account."""
    member = follower(session, ev, fetch=False)
    scene = _scene(ev)
    record_event(session, member.id, "oa.scanned", {"scene": scene or None, **_attribute(session, member, scene)},
                 at=ev.at, dedupe_key=ev.key("oa.scanned"))


@handles(SOURCE, "event", "unsubscribe")
def unsubscribed(session: Session, ev: Event) -> None:
    """Unfollowed the account."""
    member = follower(session, ev, fetch=False)
    record_event(session, member.id, "oa.unsubscribed", {}, at=ev.at, dedupe_key=ev.key("oa.unsubscribed"))


@handles(SOURCE, "event", "templatesendjobfinish")
def template_finished(session: Session, ev: Event) -> None:
    """A template message's fate, handed to whoever sent it (campaigns record it on their ledger)."""
    openid, msgid = ev.require("FromUserName"), ev.get("MsgID") or ev.require("MsgId")
    for fn in registry.TEMPLATE_RESULT_HANDLERS:
        fn(session, openid=openid, msgid=msgid, status=ev.get("Status"), at=ev.at)


@handles(SOURCE, "text")
def text_received(session: Session, ev: Event) -> None:
    """A text message: on the timeline with its keywords; replies that are not passive go out afterwards."""
    member = follower(session, ev, fetch=False)
    text = ev.get("Content")
    record_event(session, member.id, "message.received",
                 {"channel": ev.source, "text": text, "keywords": keywords(text), "msg_id": ev.get("MsgId")},
                 at=ev.at, dedupe_key=ev.key("message.received"))
    rule = find_rule(session, ev.source, text)
    # The OA answered plain text in the HTTP reply already; cards (and every MP reply) need the API.
    if rule is not None and (ev.source != SOURCE or rule.miniprogram):
        enqueue(send_custom_reply, ev.source, ev.get("FromUserName"), rule.id, ev.inbox_id, queue="fast",
                session=session)
