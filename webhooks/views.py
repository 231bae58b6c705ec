"""Answers of the intake's admin endpoints, built from stored rows (store codes and tag names looked up at once)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership.models import Store, Tag
from webhooks.models import AutoReply, ChannelCode, OAQrCode
from webhooks.schemas import AutoReplyOut, ChannelCodeOut, OAQrCodeOut, WelcomeIn


def _store_codes(session: Session, ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    return dict(session.execute(select(Store.id, Store.code).where(Store.id.in_(ids))).all()) if ids else {}


def channel_codes_out(session: Session, codes: list[ChannelCode]) -> list[ChannelCodeOut]:
    """The answers of channel codes: store code, staff userids, tag names, welcome text."""
    stores = _store_codes(session, (c.store_id for c in codes))
    tag_ids = {i for c in codes for i in c.tag_ids or ()}
    tags = dict(session.execute(select(Tag.id, Tag.name).where(Tag.id.in_(tag_ids))).all()) if tag_ids else {}
    return [ChannelCodeOut(id=c.id, state=c.state, config_id=c.config_id, qr_code=c.qr_code, name=c.name,
                           store=stores.get(c.store_id), staff=list(c.staff_userids or ()),
                           tags=[tags[i] for i in c.tag_ids or () if i in tags],
                           welcome=WelcomeIn(text=c.welcome_text) if c.welcome_text else None,
                           created_at=c.created_at)
            for c in codes]


def oa_qrcodes_out(session: Session, qrs: list[OAQrCode]) -> list[OAQrCodeOut]:
    """The answers of official-account QR codes, with their store's code."""
    stores = _store_codes(session, (q.store_id for q in qrs))
    return [OAQrCodeOut(id=q.id, scene=q.scene, ticket=q.ticket, url=q.url, name=q.name,
                        store=stores.get(q.store_id), staff=q.staff_userid, expire_seconds=q.expire_seconds,
                        created_at=q.created_at)
            for q in qrs]


def auto_reply_out(rule: AutoReply) -> AutoReplyOut:
    """The answer of an auto-reply rule."""
    return AutoReplyOut(id=rule.id, active=rule.active, name=rule.name, keywords=rule.keywords, match=rule.match,
                        channels=rule.channels, reply_text=rule.reply_text, miniprogram=rule.miniprogram,
                        priority=rule.priority)
