"""Customer group chats (客户群) and who is in them: the one place the callbacks and `siyu sync wecom` write through.

Both writers hand over WeCom's `groupchat/get` answer and the stored chat is made equal to it. Timeline
dedupe keys name the membership itself (chat, person, join time), not what reported it, so a replayed
callback, a second sync, or a sync after the callback write each group.joined / group.left once.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, fields
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.types import utcnow
from membership.identity import IdentityIn, bind, live_member
from membership.models import GroupChat, GroupChatMember, Identity, IdentityType
from membership.timeline import record_event

log = logging.getLogger(__name__)

STAFF, CUSTOMER = 1, 2  # member_list[].type
ACTIVE, DISMISSED = "active", "dismissed"
WECOM = IdentityType.wecom_external.value
UNIONID = IdentityType.unionid.value


@dataclass
class ChangeSummary:
    """What one call changed (all zero when nothing did)."""

    chats_created: int = 0
    chats_updated: int = 0
    chats_dismissed: int = 0
    members_joined: int = 0  # chat member rows that became active, staff included
    members_left: int = 0
    members_created: int = 0  # profile members bound for customers Siyu did not know
    identities_added: int = 0
    members_merged: int = 0
    events_written: int = 0

    @property
    def changes(self) -> int:
        """How many things the call created, changed or wrote."""
        return sum(getattr(self, f.name) for f in fields(self))


def upsert_chat(session: Session, chat_detail: dict, corp_id: str, *, at: datetime | None = None) -> ChangeSummary:
    """Make the stored chat and its members equal to WeCom's `groupchat/get` answer (its `group_chat`)."""
    at = at or utcnow()
    summary = ChangeSummary()
    chat_id = chat_detail["chat_id"]
    chat, created = _chat(session, chat_id)
    summary.chats_created += created
    wanted = {"name": chat_detail.get("name"), "owner_userid": chat_detail.get("owner"),
              "notice": chat_detail.get("notice"), "member_version": chat_detail.get("member_version"),
              "status": ACTIVE}
    if any(getattr(chat, k) != v for k, v in wanted.items()):
        for k, v in wanted.items():
            setattr(chat, k, v)
        summary.chats_updated += not created
    current = {m["userid"]: m for m in chat_detail.get("member_list") or [] if m.get("userid")}
    rows = {r.userid: r for r in session.scalars(select(GroupChatMember).where(GroupChatMember.chat_id == chat_id))}
    member_of = _bind_customers(session, corp_id, [m for m in current.values() if _type(m) == CUSTOMER], summary)
    gone = [rows[u] for u in sorted(rows) if rows[u].active and u not in current]
    _leave(session, chat_id, gone, corp_id, at, summary)
    for userid in sorted(current):
        _join(session, chat_id, rows.get(userid), current[userid], member_of.get(userid), at, summary)
    session.flush()
    return summary


def leave_chat(session: Session, chat_id: str, userids: list[str], corp_id: str, *,
               at: datetime | None = None) -> ChangeSummary:
    """These people left the chat (a callback's MemChangeList, when the chat can no longer be read)."""
    summary = ChangeSummary()
    if userids:
        rows = session.scalars(select(GroupChatMember).where(
            GroupChatMember.chat_id == chat_id, GroupChatMember.userid.in_(userids),
            GroupChatMember.active.is_(True)).order_by(GroupChatMember.userid)).all()
        _leave(session, chat_id, list(rows), corp_id, at or utcnow(), summary)
        session.flush()
    return summary


def dismiss_chat(session: Session, chat_id: str, corp_id: str, *, at: datetime | None = None) -> ChangeSummary:
    """The chat was dismissed: it is marked so and everyone still in it has left."""
    summary = ChangeSummary()
    chat, created = _chat(session, chat_id)
    summary.chats_created += created
    if chat.status != DISMISSED:
        chat.status = DISMISSED
        summary.chats_dismissed += 1
    rows = session.scalars(select(GroupChatMember).where(
        GroupChatMember.chat_id == chat_id, GroupChatMember.active.is_(True)).order_by(GroupChatMember.userid)).all()
    _leave(session, chat_id, list(rows), corp_id, at or utcnow(), summary)
    session.flush()
    return summary


def active_chat_ids(session: Session) -> set[str]:
    """The chat ids stored as active (a full sync dismisses those WeCom no longer lists)."""
    return set(session.scalars(select(GroupChat.chat_id).where(GroupChat.status == ACTIVE)))


# -- internals ------------------------------------------------------------------------------------------
def _chat(session: Session, chat_id: str) -> tuple[GroupChat, bool]:
    chat = session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id))
    if chat is not None:
        return chat, False
    try:
        with session.begin_nested():
            chat = GroupChat(chat_id=chat_id, status=ACTIVE)
            session.add(chat)
        return chat, True
    except IntegrityError:
        # A callback and the sync raced to create it: use theirs.
        return session.scalar(select(GroupChat).where(GroupChat.chat_id == chat_id)), False


def _type(item: dict) -> int:
    try:
        return int(item.get("type") or CUSTOMER)
    except (TypeError, ValueError):
        return CUSTOMER


def _when(timestamp) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(timestamp), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):  # OSError: too large for the platform's time_t
        return None


def _bind_customers(session: Session, corp_id: str, items: list[dict], summary: ChangeSummary) -> dict[str, int]:
    """external userid -> member id; `bind` (which creates and merges) only for customers not plainly known."""
    exts = [m["userid"] for m in items]
    if not exts:
        return {}
    by_ext = dict(session.execute(select(Identity.value, Identity.member_id).where(
        Identity.type == WECOM, Identity.scope == corp_id, Identity.value.in_(exts))).all())
    unionids = sorted({m["unionid"] for m in items if m.get("unionid")})
    by_union = dict(session.execute(select(Identity.value, Identity.member_id).where(
        Identity.type == UNIONID, Identity.scope == "", Identity.value.in_(unionids))).all()) if unionids else {}
    out: dict[str, int] = {}
    for m in items:
        ext, union = m["userid"], m.get("unionid") or None
        known = by_ext.get(ext)
        if known is not None and (union is None or by_union.get(union) == known):
            out[ext] = known
            continue
        ids = [IdentityIn(WECOM, ext, corp_id)] + ([IdentityIn(UNIONID, union)] if union else [])
        result = bind(session, ids, name=m.get("name") or None)
        summary.members_created += result.created
        summary.identities_added += len(result.new_identities)
        summary.members_merged += len(result.merged)
        out[ext] = by_ext[ext] = result.member.id
        if union:
            by_union[union] = result.member.id
    return out


def _join(session: Session, chat_id: str, row: GroupChatMember | None, item: dict, member_id: int | None,
          at: datetime, summary: ChangeSummary) -> None:
    if row is None:
        row = GroupChatMember(chat_id=chat_id, userid=item["userid"], active=False)
        session.add(row)
    fresh = not row.active
    if fresh:
        row.active, row.left_at, row.joined_at = True, None, _when(item.get("join_time")) or at
        summary.members_joined += 1
    row.type, row.join_scene = _type(item), item.get("join_scene", row.join_scene)
    row.unionid = item.get("unionid") or row.unionid
    newly_known = member_id is not None and row.member_id != member_id
    if member_id is not None:
        row.member_id = member_id
    if member_id is not None and (fresh or newly_known):
        _record(session, member_id, "group.joined", chat_id, row, row.joined_at, summary)


def _leave(session: Session, chat_id: str, rows: list[GroupChatMember], corp_id: str, at: datetime,
           summary: ChangeSummary) -> None:
    for row in rows:
        row.active, row.left_at = False, at
        summary.members_left += 1
        member_id = _member_id(session, row, corp_id)
        if member_id is not None:
            _record(session, member_id, "group.left", chat_id, row, at, summary)


def _member_id(session: Session, row: GroupChatMember, corp_id: str) -> int | None:
    if row.type != CUSTOMER:
        return None
    if row.member_id is not None:
        member = live_member(session, row.member_id)
        return member.id if member else None
    # Rows stored before their customer was bound: look the customer up, but bind nobody on the way out.
    for type_, scope, value in ((WECOM, corp_id, row.userid), (UNIONID, "", row.unionid)):
        if value:
            found = session.scalar(select(Identity.member_id).where(
                Identity.type == type_, Identity.scope == scope, Identity.value == value))
            if found is not None:
                return found
    return None


def _record(session: Session, member_id: int, type_: str, chat_id: str, row: GroupChatMember, at: datetime,
            summary: ChangeSummary) -> None:
    stamp = int(row.joined_at.timestamp()) if row.joined_at else 0
    key = f"{type_}:{chat_id}:{row.userid}:{stamp}"
    if len(key) > 128:  # the dedupe_key column's width; ids this long are not expected from WeCom
        key = f"{type_}:{hashlib.sha1(key.encode()).hexdigest()}"
    if record_event(session, member_id, type_, {"chat_id": chat_id}, at=at, dedupe_key=key) is not None:
        summary.events_written += 1
