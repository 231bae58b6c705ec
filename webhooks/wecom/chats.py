"""change_external_chat: customer group chats, written through membership.groups.

Every kind re-reads the chat from the API and hands the answer to `upsert_chat`, which diffs it with
the stored member list, so late or reordered events converge; MemChangeList is used only when the
chat can no longer be read.
"""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from bot.clients import wecom_client
from bot.errors import PermanentAPIError
from membership.groups import dismiss_chat, leave_chat, upsert_chat
from webhooks.dispatch import Event, handles
from webhooks.people import corp_id

log = logging.getLogger(__name__)
CHAT = ("wecom", "event", "change_external_chat")


def _items(value) -> list[str]:
    if isinstance(value, dict):
        value = value.get("Item")
    if value is None:
        return []
    return [v.strip() for v in (value if isinstance(value, list) else [value]) if isinstance(v, str) and v.strip()]


@handles(*CHAT, "create")
@handles(*CHAT, "update")
def chat_changed(session: Session, ev: Event) -> None:
    """A group chat was created, or its members, owner, name or notice changed."""
    chat_id = ev.require("ChatId")
    try:
        info = wecom_client().get_group_chat(chat_id).get("group_chat") or {}
    except PermanentAPIError as exc:
        log.info("group chat %s: not readable (%s), applying the event's member list", chat_id, exc)
        gone = _items(ev.data.get("MemChangeList")) if ev.get("UpdateDetail") == "del_member" else []
        leave_chat(session, chat_id, gone, corp_id(), at=ev.at)
        return
    upsert_chat(session, {**info, "chat_id": chat_id}, corp_id(), at=ev.at)


@handles(*CHAT, "dismiss")
def chat_dismissed(session: Session, ev: Event) -> None:
    """A group chat was dismissed: everyone has left it."""
    dismiss_chat(session, ev.require("ChatId"), corp_id(), at=ev.at)
