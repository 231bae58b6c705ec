"""change_external_chat: customer group chats and their members, group.joined / group.left for known members.

Every kind re-reads the chat from the API and diffs its member list with the stored one, so late or
reordered events converge; MemChangeList is used when the chat can no longer be read.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.errors import PermanentAPIError
from config.types import utcnow
from membership.identity import IdentityIn, resolve
from membership.timeline import record_event
from webhooks.dispatch import Event, handles
from webhooks.models import GroupChat, GroupChatMember
from webhooks.people import member_by_external

log = logging.getLogger(__name__)
CHAT = ("wecom", "event", "change_external_chat")
CUSTOMER = 2  # member_list[].type: 1 staff, 2 external contact


def _items(value) -> list[str]:
    if isinstance(value, dict):
        value = value.get("Item")
    if value is None:
        return []
    return [v.strip() for v in (value if isinstance(value, list) else [value]) if isinstance(v, str) and v.strip()]


def _chat(session: Session, chat_id: str) -> GroupChat:
    chat = session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id))
    if chat is None:
        try:
            with session.begin_nested():
                chat = GroupChat(chat_id=chat_id)
                session.add(chat)
        except IntegrityError:
            chat = session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id))
    return chat


def _member_of(session: Session, row: GroupChatMember) -> int | None:
    if row.type != CUSTOMER:
        return None
    member = member_by_external(session, row.userid)
    if member is None and row.unionid:
        member = resolve(session, IdentityIn("unionid", row.unionid))
    return member.id if member else None


def _joined(session: Session, ev: Event, chat_id: str, item: dict) -> None:
    row = session.scalar(select(GroupChatMember).where(GroupChatMember.chat_id == chat_id,
                                                       GroupChatMember.userid == item["userid"]))
    if row is not None and row.active:
        return
    if row is None:
        row = GroupChatMember(chat_id=chat_id, userid=item["userid"])
        session.add(row)
    row.type, row.unionid = int(item.get("type") or CUSTOMER), item.get("unionid")
    row.join_scene, row.active, row.left_at = item.get("join_scene"), True, None
    try:
        row.joined_at = datetime.fromtimestamp(int(item.get("join_time")), timezone.utc)
    except (TypeError, ValueError):
        row.joined_at = ev.at
    session.flush()
    row.member_id = _member_of(session, row)
    if row.member_id:
        record_event(session, row.member_id, "group.joined", {"chat_id": chat_id}, at=row.joined_at,
                     dedupe_key=ev.key(f"group.joined:{row.userid}"))


def _left(session: Session, ev: Event, chat_id: str, userid: str) -> None:
    row = session.scalar(select(GroupChatMember).where(GroupChatMember.chat_id == chat_id,
                                                       GroupChatMember.userid == userid))
    if row is None or not row.active:
        return
    row.active, row.left_at = False, ev.at
    member_id = row.member_id or _member_of(session, row)
    if member_id:
        record_event(session, member_id, "group.left", {"chat_id": chat_id}, at=ev.at,
                     dedupe_key=ev.key(f"group.left:{userid}"))


def _active(session: Session, chat_id: str) -> set[str]:
    return set(session.scalars(select(GroupChatMember.userid).where(
        GroupChatMember.chat_id == chat_id, GroupChatMember.active.is_(True))))


def refresh_chat(session: Session, ev: Event) -> None:
    """Make the stored chat and its members equal to the API's answer."""
    from bot.clients import wecom_client

    chat_id = ev.get("ChatId")
    chat = _chat(session, chat_id)
    try:
        info = wecom_client().get_group_chat(chat_id).get("group_chat") or {}
    except PermanentAPIError as exc:
        log.info("group chat %s: not readable (%s), applying the event's member list", chat_id, exc)
        for userid in _items(ev.data.get("MemChangeList")) if ev.get("UpdateDetail") == "del_member" else []:
            _left(session, ev, chat_id, userid)
        return
    chat.name, chat.owner_userid, chat.notice = info.get("name"), info.get("owner"), info.get("notice")
    chat.member_version, chat.status = info.get("member_version"), "active"
    current = {m["userid"]: m for m in info.get("member_list") or [] if m.get("userid")}
    for userid in sorted(_active(session, chat_id) - set(current)):
        _left(session, ev, chat_id, userid)
    for userid in sorted(current):
        _joined(session, ev, chat_id, current[userid])


@handles(*CHAT, "create")
@handles(*CHAT, "update")
def chat_changed(session: Session, ev: Event) -> None:
    """A group chat was created, or its members, owner, name or notice changed."""
    refresh_chat(session, ev)


@handles(*CHAT, "dismiss")
def chat_dismissed(session: Session, ev: Event) -> None:
    """A group chat was dismissed: everyone has left it."""
    chat_id = ev.get("ChatId")
    chat = _chat(session, chat_id)
    chat.status, chat.updated_at = "dismissed", utcnow()
    for userid in sorted(_active(session, chat_id)):
        _left(session, ev, chat_id, userid)
