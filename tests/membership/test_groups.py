"""membership.groups: a chat made equal to WeCom's answer, customers bound, each join and leave written once."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from config.queue import in_process_runner
from membership.groups import dismiss_chat, leave_chat, upsert_chat
from membership.identity import IdentityIn, bind
from membership.merge import merge_members
from membership.models import GroupChat, GroupChatMember, Identity, Member, TimelineEvent

CORP = "wwcorp"
T0 = 1700000000
AT = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _jobs_finish(settings):
    """Segment re-checks queued by the group events run before the test's database goes away."""
    yield
    in_process_runner().drain(30)


def _chat(*members: dict, name: str = "老客群") -> dict:
    return {"chat_id": "wrC1", "name": name, "owner": "zhang", "notice": "", "member_list": [
        {"userid": "zhang", "type": 1, "join_time": T0}, *members]}


def _customer(ext: str, join_time: int = T0, **extra) -> dict:
    return {"userid": ext, "type": 2, "join_time": join_time, "join_scene": 3, **extra}


def _events(session) -> list[tuple[int, str]]:
    return [(e.member_id, e.type) for e in session.scalars(select(TimelineEvent).where(
        TimelineEvent.type.startswith("group.")).order_by(TimelineEvent.id))]


def test_customers_are_bound_by_external_userid_and_unionid(session):
    # given a member known by unionid only
    known = bind(session, [IdentityIn("unionid", "u-1")]).member
    # when a chat lists them (with that unionid) and a stranger
    summary = upsert_chat(session, _chat(_customer("wmA", unionid="u-1"), _customer("wmB")), CORP)
    # then wmA joined the known member, wmB became a new one, and both joined once
    ids = dict(session.execute(select(Identity.value, Identity.member_id)
                               .where(Identity.type == "wecom_external")).all())
    assert ids["wmA"] == known.id and ids["wmB"] != known.id
    assert (summary.members_created, summary.members_joined, summary.events_written) == (1, 3, 2)
    assert sorted(_events(session)) == sorted([(known.id, "group.joined"), (ids["wmB"], "group.joined")])
    rows = {r.userid: r for r in session.scalars(select(GroupChatMember))}
    assert rows["wmA"].member_id == known.id and rows["zhang"].member_id is None
    assert rows["wmA"].joined_at == datetime.fromtimestamp(T0, timezone.utc)


def test_the_same_answer_from_another_writer_changes_nothing(session):
    # given a chat applied from a callback
    upsert_chat(session, _chat(_customer("wmA")), CORP, at=AT)
    # when the sync applies the same answer later, then nothing is written
    again = upsert_chat(session, _chat(_customer("wmA")), CORP, at=AT + timedelta(hours=5))
    assert again.changes == 0, again
    assert len(_events(session)) == 1


def test_leaving_and_coming_back_are_each_written_once(session):
    # given a customer in a chat
    upsert_chat(session, _chat(_customer("wmA")), CORP, at=AT)
    # when they leave, the leave is reported twice (callback, then sync), and they rejoin later
    upsert_chat(session, _chat(), CORP, at=AT)
    assert leave_chat(session, "wrC1", ["wmA"], CORP, at=AT).changes == 0
    upsert_chat(session, _chat(_customer("wmA", join_time=T0 + 3600)), CORP, at=AT)
    upsert_chat(session, _chat(_customer("wmA", join_time=T0 + 3600)), CORP, at=AT)
    # then the timeline reads joined, left, joined
    assert [t for _, t in _events(session)] == ["group.joined", "group.left", "group.joined"]


def test_a_leave_applied_again_is_written_once(session):
    # given a customer's leave written, and the stored row put back as if the row's update were lost
    upsert_chat(session, _chat(_customer("wmA")), CORP, at=AT)
    upsert_chat(session, _chat(), CORP, at=AT)
    row = session.scalar(select(GroupChatMember).where(GroupChatMember.userid == "wmA"))
    row.active = True
    # when the leave is applied again, then the timeline still has it once
    upsert_chat(session, _chat(), CORP, at=AT + timedelta(minutes=1))
    assert [t for _, t in _events(session)] == ["group.joined", "group.left"]


def test_dismissing_a_chat_makes_everyone_leave(session):
    # given a chat of one customer
    upsert_chat(session, _chat(_customer("wmA")), CORP, at=AT)
    # when it is dismissed twice
    first = dismiss_chat(session, "wrC1", CORP, at=AT)
    second = dismiss_chat(session, "wrC1", CORP, at=AT)
    # then it is dismissed, nobody is in it, and the customer left once
    assert (first.chats_dismissed, first.members_left, second.changes) == (1, 2, 0)
    assert session.scalar(select(GroupChat.status)) == "dismissed"
    assert not any(session.scalars(select(GroupChatMember.active)))
    assert [t for _, t in _events(session)] == ["group.joined", "group.left"]


def test_chat_membership_follows_a_merge(session):
    # given two members in a chat, then proven to be one person
    upsert_chat(session, _chat(_customer("wmA"), _customer("wmB")), CORP, at=AT)
    ids = dict(session.execute(select(Identity.value, Identity.member_id)).all())
    older, newer = sorted((ids["wmA"], ids["wmB"]))
    assert merge_members(session, session.get(Member, older), session.get(Member, newer), reason="test")
    # when the newer one's external userid leaves
    upsert_chat(session, _chat(_customer("wmA" if ids["wmB"] == newer else "wmB")), CORP, at=AT)
    # then the survivor holds every row and gets the leave
    assert set(session.scalars(select(GroupChatMember.member_id).where(GroupChatMember.type == 2))) == {older}
    assert _events(session)[-1] == (older, "group.left")
