"""wecom_staff_task end to end against the sandbox: one task and one card per staff member however often the
campaign is launched or its jobs run; a click completes the task once and updates the card; overdue tasks
are reminded once, on the engine's controllable clock."""
from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.credentials import wecom_credentials
from bot.sandbox import events as tencent
from bot.sandbox import wecom_cards
from campaigns import fanout, ledger
from campaigns.models import CampaignStep, MassQuota
from campaigns.tasks import card, service
from campaigns.tasks.models import StaffTask
from config.database import session_scope
from config.queue import in_process_runner, recording
from config.settings import get_settings
from membership.models import TimelineEvent
from siyu.app import create_app
from tests.campaigns.conftest import build_world
from tests.conftest import ADMIN_TOKEN
from tests.webhooks.conftest import wecom_post

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACTION = {"type": "wecom_staff_task", "title": "回访老客", "description": "问问新品试用感受", "due_in_hours": 24}


def launch(segment_id: int, times: int = 2) -> int:
    """Create the campaign and launch it `times` times; every run job it queued runs twice."""
    with recording() as jobs, TestClient(create_app()) as client:
        r = client.post("/api/v1/campaigns", headers=ADMIN,
                        json={"name": "回访", "audience": {"segment_id": segment_id}, "action": ACTION})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        for _ in range(times):
            assert client.post(f"/api/v1/campaigns/{cid}/launch", headers=ADMIN).status_code == 200
    runs = [j.args[0] for j in jobs if j.func is fanout.run_job]
    for run_id in runs + runs:
        fanout.run_job(run_id)
    return cid


def cards(sandbox) -> list[dict]:
    return [m for m in sandbox.app_messages if m["msgtype"] == "template_card"]


def drain() -> None:
    assert in_process_runner().drain(60), "background jobs did not finish"


def api(method: str, path: str, headers=ADMIN, **kw):
    with TestClient(create_app()) as client:
        return client.request(method, path, headers=headers, **kw)


@pytest.fixture
def world(sandbox, manual_clock):
    return build_world(sandbox, members=30, stores=2, staff=2)


@pytest.mark.parametrize("chunk", [10_000, 4])
def test_given_a_campaign_launched_twice_then_each_staff_member_has_one_task_and_one_card(world, sandbox, monkeypatch,
                                                                                          chunk):
    # when a staff-task campaign over a segment across 2 staff is launched twice, its jobs run twice each
    # (with chunks of 4, each staff member's 15 customers come in 4 sends: still one task and one card)
    monkeypatch.setattr(ledger, "CHUNK", chunk)
    cid = launch(world.segment_id)
    launch_again = api("POST", f"/api/v1/campaigns/{cid}/launch")
    assert launch_again.status_code == 200
    # then there is one task per staff member, with exactly their customers in the audience
    with session_scope() as s:
        tasks = {t.staff_id: (t.id, t.task_id) for t in s.scalars(select(StaffTask))}
        listed = Counter(s.scalars(select(CampaignStep.staff_id).where(CampaignStep.status == "submitted")))
        quota = s.scalar(select(func.coalesce(func.sum(MassQuota.used), 0)))  # rows exist (they serialise claims)
        assigned = Counter(s.scalars(select(TimelineEvent.member_id).where(TimelineEvent.type == "task.assigned")))
    assert len(tasks) == 2
    assert listed == Counter({staff_id: 15 for staff_id in tasks})
    # and one template_card each, button_interaction, with the task's unique task_id and 完成 / 稍后
    sent = cards(sandbox)
    assert Counter(m["touser"] for m in sent) == Counter(world.staff)
    assert sorted(m["template_card"]["task_id"] for m in sent) == sorted(t for _, t in tasks.values())
    for m in sent:
        tc = m["template_card"]
        assert tc["card_type"] == "button_interaction"
        assert [b.get("key") for b in tc["button_list"]][:2] == [card.DONE_KEY, card.LATER_KEY]
        assert tc["card_action"]["url"].endswith("/console/workbench")
        assert tc["horizontal_content_list"][0] == {"keyname": "客户", "value": "15 位"}  # all their customers
    # each customer's timeline says a task was assigned, once; no mass-message quota was spent on them
    assert assigned == Counter({m: 1 for m in world.members})
    assert quota == 0
    # and the campaign's stats count the tasks per staff member, all open
    stats = api("GET", f"/api/v1/campaigns/{cid}").json()["stats"]
    assert stats["tasks"] == {"open": 2, "done": 0, "overdue": 0}
    assert {u: stats["per_staff"][u]["tasks"]["open"] for u in world.staff} == {u: 1 for u in world.staff}


def _click(sandbox, userid: str, task_id: str, key: str = card.DONE_KEY) -> str:
    code = wecom_cards.click(sandbox, userid, task_id, key)
    return tencent.template_card_event(wecom_credentials(get_settings()).corp_id, userid, sandbox.agent_id, code,
                                       key, task_id)


def test_a_click_delivered_twice_completes_the_task_once_and_updates_the_card(world, sandbox):
    cid = launch(world.segment_id)
    userid = world.staff[0]
    with session_scope() as s:
        task = s.scalar(select(StaffTask).where(StaffTask.staff_id == 1))  # u000's
        task_pk, task_id = task.id, task.task_id
    # a 稍后 click changes nothing
    later = _click(sandbox, userid, task_id, card.LATER_KEY)
    with TestClient(create_app()) as client:
        assert wecom_post(client, wecom_credentials(get_settings()), later).status_code == 200
        drain()
        assert api("GET", "/api/v1/tasks?status=open").json()["items"][0]["status"] == "open"
        # when the staff member taps 完成 and WeCom delivers the callback twice
        done = _click(sandbox, userid, task_id)
        for _ in range(2):
            assert wecom_post(client, wecom_credentials(get_settings()), done).status_code == 200
        drain()
    # then the task is done once, and each of its customers' timelines says so once
    with session_scope() as s:
        task = s.get(StaffTask, task_pk)
        completed = Counter(s.scalars(select(TimelineEvent.member_id).where(TimelineEvent.type == "task.completed")))
    assert (task.status, task.done_via) == ("done", "card")
    mine = [m for m in world.members if world.owner[m] == userid]
    assert completed == Counter({m: 1 for m in mine})
    # and the card was updated once with the click's response_code: its buttons now read 已完成
    shown = sandbox.task_cards[task_id]
    assert shown["replaced"] == card.DONE_LABEL and len(shown["updates"]) == 1
    with pytest.raises(ValueError):  # a card that reads 已完成 takes no more clicks
        wecom_cards.click(sandbox, userid, task_id, card.DONE_KEY)
    # a late, different click (another delivery path) completes nothing a second time
    with session_scope() as s:
        service.on_card_click(s, {"TaskId": task_id, "FromUserName": userid, "EventKey": card.DONE_KEY,
                                  "ResponseCode": "another"})
    drain()
    assert len(sandbox.task_cards[task_id]["updates"]) == 1
    # the API lists it done, and the stats count its customers confirmed
    items = api("GET", f"/api/v1/tasks?status=done&staff={userid}").json()["items"]
    assert [(i["id"], i["status"], i["customer_count"]) for i in items] == [(task_pk, "done", len(mine))]
    stats = api("GET", f"/api/v1/campaigns/{cid}").json()["stats"]
    assert stats["per_staff"][userid]["confirmed"] == len(mine)
    assert stats["per_staff"][userid]["tasks"] == {"open": 0, "done": 1, "overdue": 0}


def test_a_task_past_due_is_overdue_and_its_staff_member_is_reminded_once(world, sandbox, manual_clock):
    launch(world.segment_id)
    with session_scope() as s:
        first, second = list(s.scalars(select(StaffTask.id).order_by(StaffTask.staff_id)))
    # the first is done through the API before it is due: its card is updated with the send's response_code
    r = api("POST", f"/api/v1/tasks/{first}/done")
    assert r.status_code == 200 and r.json()["status"] == "done"
    drain()
    with session_scope() as s:
        first_card = s.get(StaffTask, first).task_id
    assert sandbox.task_cards[first_card]["replaced"] == card.DONE_LABEL
    assert api("POST", f"/api/v1/tasks/{first}/done").json()["status"] == "done"  # again: nothing changes
    # while due, nothing is overdue and no reminder goes out
    assert service.remind_tick() == {"reminders": 0}
    manual_clock.advance(hours=23, minutes=59)
    assert api("GET", "/api/v1/tasks?status=overdue").json()["items"] == []
    # when the clock passes the due time (24 hours), the open task reads overdue
    manual_clock.advance(minutes=2)
    overdue = api("GET", "/api/v1/tasks?status=overdue").json()["items"]
    assert [(i["id"], i["status"]) for i in overdue] == [(second, "overdue")]
    assert api("GET", "/api/v1/tasks?status=open").json()["items"] == []
    # and its staff member gets one reminder, however often the tick runs
    texts_before = [m for m in sandbox.app_messages if m["msgtype"] == "text"]
    for _ in range(3):
        service.remind_tick()
        drain()
        manual_clock.advance(minutes=5)
    reminders = [m for m in sandbox.app_messages if m["msgtype"] == "text"][len(texts_before):]
    assert [m["touser"] for m in reminders] == [world.staff[1]]
    assert "已逾期" in reminders[0]["text"]["content"]


def test_a_card_whose_answer_was_lost_is_settled_by_its_task_id_and_never_sent_twice(world, sandbox, manual_clock,
                                                                                       monkeypatch):
    from bot.clients import wecom_client
    from bot.errors import TransportError
    from campaigns.tasks import action

    class LosesTheFirstAnswer:
        """The card reaches WeCom, but its answer is lost on the way back (a timeout), once."""

        lost = 0

        def __getattr__(self, name):
            return getattr(wecom_client(), name)

        def send_message(self, body):
            answer = wecom_client().send_message(body)
            if LosesTheFirstAnswer.lost == 0:
                LosesTheFirstAnswer.lost += 1
                raise TransportError(None, "ReadTimeout", "message/send")
            return answer

    monkeypatch.setattr(action, "wecom_client", LosesTheFirstAnswer)
    cid = launch(world.segment_id, times=1)
    with session_scope() as s:
        unknown = s.scalar(select(func.count()).select_from(StaffTask).where(StaffTask.card_sent_at.is_(None)))
    assert unknown == 1  # one card's outcome is unknown
    # when the run is picked up again after the reconciliation delay
    manual_clock.advance(minutes=2)
    with session_scope() as s:
        run_id = s.scalar(select(StaffTask.run_id).limit(1))
    fanout.run_job(run_id)
    # then WeCom's task_id uniqueness (42014) settled it: the card was sent again and refused as a duplicate,
    # so there is still one card per staff member, and every task counts as sent
    assert sandbox.calls["message/send"] == 3
    assert Counter(m["touser"] for m in cards(sandbox)) == Counter(world.staff)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(StaffTask).where(StaffTask.card_sent_at.is_(None))) == 0
        assigned = s.scalar(select(func.count()).select_from(TimelineEvent)
                            .where(TimelineEvent.type == "task.assigned"))
    assert assigned == len(world.members)
    assert api("GET", f"/api/v1/campaigns/{cid}").json()["stats"]["tasks"]["open"] == 2


def test_a_card_update_wecom_was_too_busy_for_is_tried_again_with_the_same_code(world, sandbox, manual_clock):
    from bot.errors import BusyError

    launch(world.segment_id, times=1)
    with session_scope() as s:
        task_pk, task_id = s.execute(select(StaffTask.id, StaffTask.task_id).where(StaffTask.staff_id == 1)).one()
    with recording(), session_scope() as s:  # the update job is run by hand below (recording outlives the commit)
        assert service.complete(s, task_pk, via="api")
    sandbox.inject("message/update_template_card", *([-1] * 20))
    with pytest.raises(BusyError):
        service.update_card(task_pk, None)
    sandbox.faults.clear()
    # the retry finds the send's response_code given back, and spends it
    assert service.update_card(task_pk, None) == "updated"
    assert sandbox.task_cards[task_id]["replaced"] == card.DONE_LABEL
    assert service.update_card(task_pk, None) == "nothing to do"
