"""`siyu sync wecom` reconciles customer group chats through membership.groups."""
from __future__ import annotations

from sqlalchemy import func, select

from bot.sandbox.seed import seed_chain
from webhooks.wecom.sync import sync_wecom
from config.database import session_scope
from membership.models import GroupChat, GroupChatMember, Identity, Member, TimelineEvent


def _member_of(ext: str) -> int | None:
    with session_scope() as s:
        return s.scalar(select(Identity.member_id).where(Identity.type == "wecom_external", Identity.value == ext))


def _group_events() -> list[tuple[int, str, str]]:
    with session_scope() as s:
        rows = s.execute(select(TimelineEvent.member_id, TimelineEvent.type, TimelineEvent.data)
                         .where(TimelineEvent.type.startswith("group.")))
        return sorted((m, t, d["chat_id"]) for m, t, d in rows)


def _stored_chats() -> dict[str, tuple]:
    with session_scope() as s:
        chats = {c.chat_id: (c.name, c.owner_userid, c.status) for c in s.scalars(select(GroupChat))}
        members = s.execute(select(GroupChatMember.chat_id, GroupChatMember.userid, GroupChatMember.type)
                            .where(GroupChatMember.active.is_(True))).all()
    return {chat_id: (*info, sorted((u, t) for c, u, t in members if c == chat_id)) for chat_id, info in chats.items()}


def _chains_chats(sandbox) -> dict[str, tuple]:
    return {c["chat_id"]: (c["name"], c["owner"], "active", sorted((m["userid"], m["type"]) for m in c["member_list"]))
            for c in sandbox.group_chats.values()}


def test_given_group_chats_when_synced_twice_then_chats_members_and_one_joined_each(sandbox):
    # given a chain whose seed made 5 chats of 3 customers, and a chat with a customer no staff member has added
    seed_chain(sandbox, stores=1, staff=3, customers=30)
    stranger_chat = sandbox.add_group_chat("staff001", "新客群", external_userids=("wm00000001", "wmGROUPONLY"),
                                              userids=("staff002",))
    # when
    first = sync_wecom(progress=False)
    # then every chat and everyone in it is stored, the group-only customer is a member now,
    assert _stored_chats() == _chains_chats(sandbox)
    stranger = _member_of("wmGROUPONLY")
    assert stranger is not None
    # and each customer in a chat (never a staff member) has exactly one group.joined for it
    customers = [(c["chat_id"], m["userid"]) for c in sandbox.group_chats.values()
                 for m in c["member_list"] if m["type"] == 2]
    assert len(customers) == 5 * 3 + 2
    assert _group_events() == sorted((_member_of(ext), "group.joined", chat_id) for chat_id, ext in customers)
    assert (stranger, "group.joined", stranger_chat) in _group_events()
    assert (first.group_chats_seen, first.group_chats_created, first.group_members_seen) == (6, 6, 5 * 4 + 4)
    assert first.group_members_joined == 5 * 4 + 4 and first.group_members_left == 0
    with session_scope() as s:
        members, events = s.scalar(select(func.count()).select_from(Member)), s.scalar(
            select(func.count()).select_from(TimelineEvent))
    # when synced again
    second = sync_wecom(progress=False)
    # then nothing is written
    assert second.changes == 0, second
    assert second.group_chats_seen == 6
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == members
        assert s.scalar(select(func.count()).select_from(TimelineEvent)) == events
    assert _stored_chats() == _chains_chats(sandbox)


def test_given_a_customer_who_left_between_syncs_when_synced_then_group_left_once(sandbox):
    # given a synced chat of three customers
    seed_chain(sandbox, stores=1, staff=3, customers=30)
    chat_id = sandbox.add_group_chat("staff000", "VIP群", external_userids=("wm00000007", "wm00000008", "wm00000009"))
    sync_wecom(progress=False)
    # when one of them leaves in WeCom (the callback lost) and Siyu syncs
    chat = sandbox.group_chats[chat_id]
    chat["member_list"] = [m for m in chat["member_list"] if m["userid"] != "wm00000008"]
    report = sync_wecom(progress=False)
    # then that customer alone has left, once, and is no longer in the chat
    gone = _member_of("wm00000008")
    assert (report.group_members_left, report.group_members_joined) == (1, 0)
    assert [e for e in _group_events() if e[1] == "group.left"] == [(gone, "group.left", chat_id)]
    assert ("wm00000008", 2) not in _stored_chats()[chat_id][3]
    assert sync_wecom(progress=False).changes == 0
    assert [e for e in _group_events() if e[1] == "group.left"] == [(gone, "group.left", chat_id)]


def test_given_a_chat_dismissed_between_syncs_when_synced_then_everyone_left(sandbox):
    # given a synced chat of two customers
    seed_chain(sandbox, stores=1, staff=3, customers=30)
    chat_id = sandbox.add_group_chat("staff000", "活动群", external_userids=("wm00000010", "wm00000011"))
    sync_wecom(progress=False)
    # when WeCom no longer lists it (dismissed; the callback lost)
    del sandbox.group_chats[chat_id]
    report = sync_wecom(progress=False)
    # then it is dismissed and both customers have left it
    assert report.group_chats_dismissed == 1 and report.group_members_left == 3  # the owner too
    assert _stored_chats()[chat_id][2:] == ("dismissed", [])
    left = sorted(m for m, t, c in _group_events() if t == "group.left" and c == chat_id)
    assert left == sorted([_member_of("wm00000010"), _member_of("wm00000011")])
    assert sync_wecom(progress=False).changes == 0
