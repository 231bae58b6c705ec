"""Channel codes, OA QR codes and auto-reply rules: created in WeCom / the OA first, then stored."""
from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clients import oa_client, wecom_client
from membership.exceptions import Forbidden, InvalidInput
from membership.models import Tag
from membership.service import get_staff, get_store_by_code
from membership.tags import ensure_tag
from webhooks.models import AutoReply, ChannelCode, OAQrCode
from webhooks.schemas import AutoReplyIn, ChannelCodeIn, OAQrCodeIn

TAG_GROUP = "渠道"  # WeCom group of channel-code tags Siyu creates


def new_state() -> str:
    """A 联系我 `state` Siyu will recognise (WeCom allows 30 characters)."""
    return "sy" + secrets.token_hex(10)


def _linked_tag(session: Session, name: str) -> Tag | None:
    return session.scalars(select(Tag).where(Tag.name == name, Tag.wecom_tag_id.is_not(None))).first()


def _wecom_tags(session: Session, names: list[str]) -> list[Tag]:
    tags = []
    for name in _tag_names(names):
        tag = _linked_tag(session, name)
        if tag is None:
            answer = wecom_client().add_corp_tag([name], group_name=TAG_GROUP)
            created = (answer.get("tag_group") or {}).get("tag") or []
            wecom_id = next((t["id"] for t in created if t.get("name") == name), None)
            tag = ensure_tag(session, name, TAG_GROUP, wecom_tag_id=wecom_id)
        tags.append(tag)
    return tags


def _tag_names(names: list[str]) -> list[str]:
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def create_channel_code(session: Session, body: ChannelCodeIn, *, within_store: int | None = None,
                        may_create_tags: bool = True) -> ChannelCode:
    """Create the 联系我 code in WeCom with a fresh state, and remember what arrivals through it get.

    `within_store` (a store manager's store): the code's store and every staff member on it must be of that
    store. Without `may_create_tags` every tag must already be a WeCom corp tag. Forbidden otherwise, before
    anything is created in WeCom.
    """
    store = get_store_by_code(session, body.store)
    staff = [get_staff(session, u) for u in dict.fromkeys(body.staff)]
    if within_store is not None:
        if store.id != within_store:
            raise Forbidden("a store manager makes codes for their own store only")
        if others := [s.userid for s in staff if s.store_id != within_store]:
            raise Forbidden(f"staff: {', '.join(others)} work in another store (or none)")
    if not may_create_tags and (new := [n for n in _tag_names(body.tags) if _linked_tag(session, n) is None]):
        raise Forbidden(f"tags: {', '.join(new)} are not WeCom corp tags yet; admins and marketers create tags")
    tags = _wecom_tags(session, body.tags)
    state = new_state()
    answer = wecom_client().add_contact_way(
        type=1 if len(staff) == 1 else 2, scene=2, state=state, user=[s.userid for s in staff],
        skip_verify=True, remark=body.name[:30],
    )
    code = ChannelCode(name=body.name, state=state, store_id=store.id, staff_userids=[s.userid for s in staff],
                       tag_ids=[t.id for t in tags], welcome_text=body.welcome.text if body.welcome else None,
                       config_id=answer.get("config_id"), qr_code=answer.get("qr_code"))
    session.add(code)
    session.flush()
    return code


def create_oa_qrcode(session: Session, body: OAQrCodeIn) -> OAQrCode:
    """Create an OA QR code whose scene Siyu attributes to a store (and a staff member)."""
    store = get_store_by_code(session, body.store)
    staff = get_staff(session, body.staff) if body.staff else None
    scene = "sy" + secrets.token_hex(10)
    answer = oa_client().create_qrcode(scene, expire_seconds=body.expire_seconds)
    qr = OAQrCode(name=body.name, scene=scene, store_id=store.id, staff_userid=staff.userid if staff else None,
                  ticket=answer.get("ticket"), url=answer.get("url"), expire_seconds=body.expire_seconds)
    session.add(qr)
    session.flush()
    return qr


def create_auto_reply(session: Session, body: AutoReplyIn) -> AutoReply:
    """Store a keyword rule."""
    if not body.reply_text and body.miniprogram is None:
        raise InvalidInput("reply_text or miniprogram: a rule needs something to answer with")
    rule = AutoReply(name=body.name, keywords=[k.strip() for k in body.keywords if k.strip()], match=body.match,
                     channels=body.channels, reply_text=body.reply_text,
                     miniprogram=body.miniprogram.model_dump() if body.miniprogram else None, priority=body.priority)
    session.add(rule)
    session.flush()
    return rule


def _page(session: Session, model, after_id: int | None, limit: int, *where) -> list:
    q = select(model).where(*where).order_by(model.id).limit(limit)
    if after_id is not None:
        q = q.where(model.id > after_id)
    return list(session.scalars(q))


def list_channel_codes(session: Session, *, within_store: int | None = None, after_id: int | None = None,
                       limit: int = 50) -> list[ChannelCode]:
    """Channel codes by id after `after_id`; with `within_store` (a store manager's store) only that store's."""
    where = [ChannelCode.store_id == within_store] if within_store is not None else []
    return _page(session, ChannelCode, after_id, limit, *where)


def list_oa_qrcodes(session: Session, *, after_id: int | None = None, limit: int = 50) -> list[OAQrCode]:
    """Official-account QR codes by id after `after_id`."""
    return _page(session, OAQrCode, after_id, limit)


def list_auto_replies(session: Session, *, after_id: int | None = None, limit: int = 50) -> list[AutoReply]:
    """Auto-reply rules by id after `after_id`."""
    return _page(session, AutoReply, after_id, limit)
