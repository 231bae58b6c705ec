"""Loss alerts: a staff member and their store's managers hear that a customer deleted them."""
from __future__ import annotations

import logging

from sqlalchemy import select

from bot import sends
from bot.clients import wecom_client
from config.database import read_scope, session_scope
from membership.models import Role, Staff
from membership.service import find_staff
from webhooks.inbox import cause_of, inbox_engine
from webhooks.models import InboxEvent
from webhooks.people import member_by_external

log = logging.getLogger(__name__)


def loss_alert(inbox_id: int) -> None:
    """Send the alert of one del_follow_user event as an app text message."""
    with read_scope(inbox_engine()) as inbox:
        row = inbox.get(InboxEvent, inbox_id)
    data = (row.data if row else None) or {}
    with session_scope() as session:
        staff = find_staff(session, data.get("UserID", ""))
        if staff is None:
            return
        member = member_by_external(session, data.get("ExternalUserID", ""))
        name = (member.name if member else None) or data.get("ExternalUserID", "")
        to = [staff.userid]
        if staff.store_id is not None:
            to += list(session.scalars(select(Staff.userid).where(
                Staff.store_id == staff.store_id, Staff.role == Role.store_manager.value, Staff.active.is_(True),
                Staff.userid != staff.userid)))
    text = f"客户流失提醒：客户「{name}」删除了{staff.name}（{staff.userid}）。"
    body = {"touser": "|".join(to), "msgtype": "text", "text": {"content": text}}
    outcome = sends.send_once(key=f"loss_alert:{inbox_id}", cause=cause_of(inbox_id),
                              send=lambda: wecom_client().send_message(body))
    log.info("contact %s: loss alert to %s: %s", data.get("ExternalUserID"), ",".join(to), outcome)
