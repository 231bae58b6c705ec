"""The welcome message of an add event: its welcome_code lives 20 seconds and works once."""
from __future__ import annotations

import logging
from datetime import timedelta

from bot import sends
from bot.clients import wecom_client
from config.database import read_scope
from config.types import utcnow
from webhooks.inbox import cause_of, inbox_engine
from webhooks.models import InboxEvent
from webhooks.people import channel_code_by_state

log = logging.getLogger(__name__)

# WeCom accepts a welcome_code for 20 s from the add event, measured here from our own receipt of the
# callback (Tencent's CreateTime may be skewed): a job or retry that starts later would only earn 41051.
WELCOME_CODE_TTL = timedelta(seconds=20)


def send_welcome(inbox_id: int) -> str:
    """Job (queue `fast`): send the channel code's welcome text with the event's welcome_code, at most once per code."""
    with read_scope(inbox_engine()) as inbox:
        row = inbox.get(InboxEvent, inbox_id)
    data = (row.data if row else None) or {}
    code = (data.get("WelcomeCode") or "").strip()
    with read_scope() as session:
        channel = channel_code_by_state(session, (data.get("State") or "").strip())
        text = channel.welcome_text if channel else None
    if not code or not text:
        return "nothing to send"
    key, cause = f"welcome:{code}", cause_of(inbox_id)
    if row.received_at and utcnow() - row.received_at > WELCOME_CODE_TTL:
        if not sends.skip(key=key, reason="welcome_code expired before it was used", cause=cause):
            return "already sent"
        log.warning("welcome %s: expired before it was sent (inbox #%s)", code[:12], inbox_id)
        return "expired"
    outcome = sends.send_once(key=key, cause=cause, send=lambda: wecom_client().send_welcome_msg(code, text=text))
    log.info("welcome %s: %s for inbox #%s", code[:12], outcome, inbox_id)
    return outcome
