"""`siyu sync wecom` never mass-removes on the strength of one answer, nor deactivates staff WeCom never listed."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from webhooks.models import SyncCheckpoint
from bot.sandbox.seed import seed_chain
from webhooks.wecom.sync import sync_wecom
from webhooks.wecom.sync_guard import ShrinkRefused
from config.database import session_scope
from membership.models import GroupChat, MemberTag, Relation, Staff
from membership.service import ensure_staff
from siyu.app import create_app
from siyu.cli import app
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _staff() -> dict[str, tuple[bool, str]]:
    with session_scope() as s:
        return {st.userid: (st.active, st.source) for st in s.scalars(select(Staff))}


def _held() -> dict:
    """Everything a sync could remove."""
    with session_scope() as s:
        return {"staff": _staff(),
                "relations": sorted(s.execute(select(Relation.staff_id, Relation.member_id, Relation.status)).all()),
                "tags": sorted(s.execute(select(MemberTag.member_id, MemberTag.tag_id, MemberTag.source)).all()),
                "chats": sorted(s.execute(select(GroupChat.chat_id, GroupChat.status)).all())}


def _synced_chain(state, staff: int = 10):
    seed_chain(state, stores=1, staff=staff, customers=60)
    sync_wecom(progress=False)
    return _held()


def test_given_a_directory_that_answers_empty_when_synced_then_it_refuses_and_changes_nothing(sandbox):
    # given a synced chain of 10 staff
    before = _synced_chain(sandbox)
    # when WeCom's user/list answers no one (a wrong visible range, another app's secret)
    sandbox.staff.clear()
    result = CliRunner().invoke(app, ["sync", "wecom"])
    # then the command refuses in one line that says why and what to do, and exits non-zero
    assert result.exit_code == 1
    assert "refused" in result.output and "deactivate 10 of 10 active staff (100 %)" in result.output
    assert "SIYU_SYNC_MAX_SHRINK (20 %)" in result.output and "--allow-shrink" in result.output
    # and nothing was deactivated, ended or removed
    assert _held() == before


def test_given_an_empty_directory_when_synced_with_allow_shrink_then_it_is_applied(sandbox):
    # given a synced chain whose directory now answers no one
    _synced_chain(sandbox)
    sandbox.staff.clear()
    sandbox.follow_enabled.clear()
    # when the operator says the shrink is real
    result = CliRunner().invoke(app, ["sync", "wecom", "--allow-shrink"])
    # then every WeCom staff member is deactivated
    assert result.exit_code == 0, result.output
    assert _staff() and all(active is False for active, _ in _staff().values())


def test_given_a_staff_member_created_through_the_api_when_a_sync_does_not_list_them_then_they_stay_active(sandbox):
    # given a staff member created through the API, whom WeCom's directory does not list
    with TestClient(create_app()) as client:
        assert client.post("/api/v1/stores", json={"code": "S1", "name": "店"}, headers=ADMIN).status_code == 201
        made = client.post("/api/v1/staff", json={"userid": "apionly", "name": "新人", "store": "S1"}, headers=ADMIN)
        assert made.status_code == 201 and made.json()["source"] == "api"
    seed_chain(sandbox, stores=1, staff=10, customers=20)
    # when synced
    report = sync_wecom(progress=False)
    # then they are left alone (and do not count as a shrink)
    assert report.staff_deactivated == 0
    assert _staff()["apionly"] == (True, "api")
    # when WeCom's directory lists them later, then they are WeCom's
    sandbox.add_staff("apionly", "新人")
    sync_wecom(progress=False)
    assert _staff()["apionly"] == (True, "wecom")
    # and when WeCom stops listing them, then a sync deactivates them like any WeCom staff member
    del sandbox.staff["apionly"]
    sandbox.follow_enabled.remove("apionly")
    assert sync_wecom(progress=False).staff_deactivated == 1
    assert _staff()["apionly"] == (False, "wecom")


def test_given_staff_a_callback_named_when_the_directory_does_not_list_them_then_a_sync_deactivates_them(sandbox):
    # given a synced chain, and a staff member Siyu learnt of from a WeCom callback alone
    _synced_chain(sandbox)
    with session_scope() as s:
        ensure_staff(s, "fromcallback")
    assert _staff()["fromcallback"] == (True, "wecom")
    # when a sync's directory does not list them, then they are deactivated (WeCom named them: they are WeCom's)
    assert sync_wecom(progress=False).staff_deactivated == 1
    assert _staff()["fromcallback"] == (False, "wecom")


def test_given_a_ten_percent_shrink_then_it_passes_and_a_third_is_refused(sandbox):
    # given a synced chain of 10 staff
    _synced_chain(sandbox)
    # when one of them leaves WeCom (10 %)
    del sandbox.staff["staff009"]
    sandbox.follow_enabled.remove("staff009")
    # then the sync deactivates them
    assert sync_wecom(progress=False).staff_deactivated == 1
    # when three of the nine left go at once (33 %)
    for userid in ("staff006", "staff007", "staff008"):
        del sandbox.staff[userid]
        sandbox.follow_enabled.remove(userid)
    before = _held()
    # then the sync refuses and nobody is deactivated
    with pytest.raises(ShrinkRefused, match=r"deactivate 3 of 9 active staff \(33 %\)"):
        sync_wecom(progress=False)
    assert _held() == before


def test_given_contact_pages_and_chat_list_that_answer_empty_when_synced_then_nothing_is_ended(sandbox):
    # given a synced chain with customers, tags and group chats
    before = _synced_chain(sandbox)
    assert before["relations"] and before["tags"] and before["chats"]
    # when WeCom answers every staff member's customer pages, and the chat list, with nothing
    for userid in sandbox.follows:
        sandbox.follows[userid] = {}
    sandbox.group_chats.clear()
    with pytest.raises(ShrinkRefused) as refused:
        sync_wecom(progress=False)
    # then the refusal names each removal that was too much, and nothing was ended, removed or dismissed
    message = str(refused.value)
    assert "end 66 of 66 relations (100 %)" in message and "dismiss 5 of 5 group chats (100 %)" in message
    assert _held() == before
    # and the next run starts over rather than resuming from this answer
    with session_scope() as s:
        assert s.get(SyncCheckpoint, "wecom") is None
    # when the operator allows it, then it is applied
    report = sync_wecom(progress=False, allow_shrink=True)
    assert report.relations_ended == 66 and report.group_chats_dismissed == 5


def test_given_contact_pages_that_lost_every_tag_when_synced_then_the_tags_stay(sandbox):
    # given a synced chain whose customers carry WeCom tags
    before = _synced_chain(sandbox)
    # when every customer comes back without tags
    for follows in sandbox.follows.values():
        for info in follows.values():
            info["tag_id"] = []
    # then the sync refuses to remove them
    with pytest.raises(ShrinkRefused, match=rf"remove {len(before['tags'])} of {len(before['tags'])} WeCom tags"):
        sync_wecom(progress=False)
    assert _held() == before


def test_given_a_chat_answered_without_members_when_synced_then_nobody_leaves_it(sandbox):
    # given a synced chain with group chats
    before = _synced_chain(sandbox)
    # when WeCom answers one chat's details with no members at all (a chat always holds its owner)
    chat = next(iter(sandbox.group_chats.values()))
    chat["member_list"] = []
    report = sync_wecom(progress=False)
    # then nobody has left it
    assert report.group_members_left == 0
    assert _held() == before


def test_given_a_follow_user_list_that_shrinks_by_half_when_synced_then_removals_are_refused(sandbox):
    # given a synced chain, then one customer relation of a listed staff member ends in WeCom
    before = _synced_chain(sandbox)
    sandbox.remove_follow("staff000", "wm00000000")
    # when WeCom's follow-user list loses half the staff who have customers
    sandbox.follow_enabled[:] = sandbox.follow_enabled[:5]
    # then the sync refuses to end anything, even the one relation that did end
    with pytest.raises(ShrinkRefused, match=r"drop 5 of 10 staff with customers from the follow-user list"):
        sync_wecom(progress=False)
    assert _held()["relations"] == before["relations"]
