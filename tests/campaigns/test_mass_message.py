"""wecom_mass_message end to end against the sandbox: one call per staff member and chunk, even launched twice."""
from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from campaigns import fanout, ledger
from campaigns.models import CampaignStep, MassQuota
from campaigns.ticks import tick
from config.database import session_scope
from config.queue import recording
from membership.models import TimelineEvent
from siyu.app import create_app
from tests.campaigns.conftest import TEXT, build_world
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def spec(segment_id: int, **extra) -> dict:
    return {"name": "回访", "audience": {"segment_id": segment_id},
            "action": {"type": "wecom_mass_message", "text": TEXT}, **extra}


def launch_twice(segment_id: int, **extra) -> tuple[int, list[int]]:
    """Create a campaign, launch it twice through the API; its id and the run jobs the launches queued."""
    with recording() as jobs, TestClient(create_app()) as client:
        cid = client.post("/api/v1/campaigns", json=spec(segment_id, **extra), headers=ADMIN).json()["id"]
        for _ in range(2):
            assert client.post(f"/api/v1/campaigns/{cid}/launch", headers=ADMIN).status_code == 200
    return cid, [j.args[0] for j in jobs if j.func is fanout.run_job]


def stats(cid: int) -> dict:
    with TestClient(create_app()) as client:
        return client.get(f"/api/v1/campaigns/{cid}", headers=ADMIN).json()


def calls_by_sender(sandbox) -> Counter:
    return Counter(u for t in sandbox.msg_tasks.values() for u in t["senders"])


def recipients(sandbox) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task in sandbox.msg_tasks.values():
        for userid, sender in task["senders"].items():
            out.setdefault(userid, []).extend(r["external_userid"] for r in sender["results"])
    return out


@pytest.mark.parametrize("members,staff,chunk", [(5000, 40, 10_000), (600, 4, 50)])
def test_given_a_campaign_launched_twice_then_each_staff_member_gets_one_call_per_chunk_with_exactly_their_customers(
        sandbox, manual_clock, monkeypatch, members, staff, chunk):
    # given a segment of members across 3 stores, 50 of whom had this month's 4 mass messages already
    monkeypatch.setattr(ledger, "CHUNK", chunk)
    world = build_world(sandbox, members=members, stores=3, staff=staff)
    over = world.members[:50]
    with session_scope() as s:
        s.execute(insert(MassQuota), [{"member_id": m, "month": "202603", "quota": 4, "used": 4} for m in over])
    # when the campaign is launched twice, and each queued run job runs twice
    cid, runs = launch_twice(world.segment_id)
    assert len(set(runs)) == 1
    for run_id in runs + runs:
        fanout.run_job(run_id)
    # then each staff member got one add_msg_template per chunk of their customers
    expected: dict[str, list[str]] = {}
    for m in world.members[50:]:
        expected.setdefault(world.owner[m], []).append(world.ext[m])
    audience = Counter(world.owner.values())  # chunks are cut from the whole audience, in member order
    per_staff = {u: -(-n // chunk) for u, n in audience.items()}
    assert calls_by_sender(sandbox) == Counter(per_staff)
    assert all(len(t["senders"]) == 1 for t in sandbox.msg_tasks.values())
    # covering exactly their customers in the audience, each once
    got = recipients(sandbox)
    assert {u: sorted(e) for u, e in got.items()} == {u: sorted(e) for u, e in expected.items()}
    # and the members over the quota were skipped and counted
    body = stats(cid)
    assert body["status"] == "completed"
    assert body["stats"]["targeted"] == members
    assert body["stats"]["skipped"] == {"monthly_quota": 50}
    assert body["stats"]["sent"] == members - 50
    assert sum(v["targeted"] for v in body["stats"]["per_store"].values()) == members
    assert set(body["stats"]["per_staff"]) == set(world.staff)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CampaignStep)) == members


def test_given_staff_confirm_then_results_reach_the_timeline_and_quota_is_corrected(sandbox, manual_clock):
    # given a sent campaign, one customer WeCom counts at the monthly quota, one who deleted the staff member
    world = build_world(sandbox, members=24, stores=3, staff=3)
    cid, runs = launch_twice(world.segment_id, goal={"event": "booking.created", "within_days": 7})
    fanout.run_job(runs[0])
    full, gone = world.members[0], world.members[1]
    sandbox.mass_received[(world.ext[full], sandbox.month_key())] = sandbox.monthly_mass_quota
    sandbox.remove_follow(world.owner[gone], world.ext[gone])
    # when two of the three staff confirm in WeCom, and the engine polls later
    confirmed = {world.owner[full], world.owner[gone]}
    for msgid, task in sandbox.msg_tasks.items():
        for userid in task["senders"]:
            if userid in confirmed:
                sandbox.confirm_msg_task(msgid, userid)
    manual_clock.advance(minutes=10)
    with recording() as jobs:
        tick()
    for job in jobs:
        if job.func is fanout.poll_job:
            job.func(*job.args)
    # then delivered customers have campaign.sent on their timeline, the others their own results
    with session_scope() as s:
        sent = s.scalar(select(func.count()).select_from(TimelineEvent).where(TimelineEvent.type == "campaign.sent"))
        results = dict(s.execute(select(CampaignStep.member_id, CampaignStep.result)).all())
        quota = s.scalar(select(MassQuota.used).where(MassQuota.member_id == full))
    mine = [m for m in world.members if world.owner[m] in confirmed]
    assert results[full] == "quota_reached" and results[gone] == "not_friend"
    assert sent == len(mine) - 2
    assert quota == 4  # WeCom said the month is used up: no reservation for them this month
    body = stats(cid)["stats"]
    assert body["delivered"] == len(mine) - 2 and body["confirmed"] == len(mine)
    # and the staff member who never confirms is reminded, then counted not_confirmed after the window
    manual_clock.advance(hours=5)
    with recording() as jobs:
        tick()
    for job in jobs:
        if job.func is fanout.poll_job:
            job.func(*job.args)
    assert any(t.get("reminded") for t in sandbox.msg_tasks.values())
    manual_clock.advance(hours=72)
    with recording() as jobs:
        tick()
    for job in jobs:
        if job.func is fanout.poll_job:
            job.func(*job.args)
    body = stats(cid)["stats"]
    assert body["failed"] == 2 + (len(world.members) - len(mine))
    with session_scope() as s:
        left = s.scalars(select(CampaignStep.result).where(CampaignStep.result == "not_confirmed")).all()
    assert len(left) == len(world.members) - len(mine)
