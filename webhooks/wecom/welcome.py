"""The welcome message of an add event: its welcome_code lives 20 seconds and works once."""
from __future__ import annotations

import logging

from sqlalchemy import select

from config.database import session_scope
from webhooks.models import InboxEvent, WelcomeSend
from webhooks.people import channel_code_by_state

log = logging.getLogger(__name__)


def _claim(session, code: str, inbox_id: int) -> WelcomeSend | None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = (insert(WelcomeSend).values(welcome_code=code, inbox_id=inbox_id, status="sending")
            .on_conflict_do_nothing(index_elements=["welcome_code"]).returning(WelcomeSend.id))
    new_id = session.execute(stmt).scalar()
    row = session.scalar(select(WelcomeSend).where(WelcomeSend.welcome_code == code).with_for_update())
    if new_id is not None:
        return row
    # Only a send that failed outright may be tried again; "sending" means a worker died mid-call.
    if row.status == "failed":
        row.status = "sending"
        return row
    return None


def send_welcome_for(inbox_id: int) -> str:
    """Send the channel code's welcome text with the event's welcome_code, at most once per code."""
    from bot.clients import wecom_client

    with session_scope() as session:
        row = session.get(InboxEvent, inbox_id)
        data = (row.data if row else None) or {}
        code = (data.get("WelcomeCode") or "").strip()
        channel = channel_code_by_state(session, (data.get("State") or "").strip())
        text = channel.welcome_text if channel else None
        if not code or not text:
            return "nothing to send"
        if _claim(session, code, inbox_id) is None:
            return "already sent"
    try:
        wecom_client().send_welcome_msg(code, text=text)
    except Exception as exc:
        _finish(code, "failed", str(exc))
        raise
    _finish(code, "sent", None)
    log.info("welcome %s: sent for inbox #%s", code[:12], inbox_id)
    return "sent"


def _finish(code: str, status: str, error: str | None) -> None:
    with session_scope() as session:
        row = session.scalar(select(WelcomeSend).where(WelcomeSend.welcome_code == code))
        row.status, row.error = status, error
