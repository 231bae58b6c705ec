"""Consents a member gave: mini-program subscribe-message grants (一次性订阅), granted and used one at a time.

WeChat lets a mini-program send a subscribe message only after the user accepted that template in a popup,
once per acceptance (errcode 43101 otherwise). The mini-program reports acceptances (`POST /mp/v1/
subscriptions`, or the `subscribe_msg_popup_event` push); every sender takes one before it sends.
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.database import upsert
from config.types import utcnow
from membership.models import SubscribeGrant


def grant(session: Session, *, member_id: int, template_id: str, count: int = 1) -> int:
    """Record `count` accepted popups of a template; the member's remaining grants of it afterwards."""
    t = SubscribeGrant.__table__
    now = utcnow()
    upsert(session, t, {"member_id": member_id, "template_id": template_id, "remaining": count, "granted_at": now},
           ["member_id", "template_id"], {"remaining": t.c.remaining + count, "granted_at": now})
    return remaining(session, member_id=member_id, template_id=template_id)


def remaining(session: Session, *, member_id: int, template_id: str) -> int:
    """How many messages of a template the member still allows."""
    return session.scalar(select(SubscribeGrant.remaining).where(
        SubscribeGrant.member_id == member_id, SubscribeGrant.template_id == template_id)) or 0


def consume(session: Session, *, member_id: int, template_id: str) -> bool:
    """Take one grant of a template for a send; False when the member has none left (send nothing then)."""
    g = SubscribeGrant
    taken = session.execute(
        update(g).where(g.member_id == member_id, g.template_id == template_id, g.remaining > 0)
        .values(remaining=g.remaining - 1, used_at=utcnow()).returning(g.remaining)).first()
    return taken is not None


def release(session: Session, *, member_id: int, template_id: str) -> None:
    """Give back a grant whose send WeChat refused without delivering (the user may still be sent one)."""
    grant(session, member_id=member_id, template_id=template_id, count=1)
