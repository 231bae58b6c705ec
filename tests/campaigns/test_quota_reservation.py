"""The monthly mass-message quota is a reservation: taken when a send is planned (for the month of its due
time), given back when it is skipped, cancelled or fails, and corrected from WeCom's results."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from campaigns import fanout, ledger, service
from campaigns.models import CampaignStep, MassQuota
from config.database import session_scope
from config.queue import recording
from tests.campaigns.conftest import build_world
from tests.campaigns.test_mass_message import launch_twice

CST = timezone(timedelta(hours=8))


def _quota() -> dict[int, int]:
    with session_scope() as s:
        return dict(s.execute(select(MassQuota.member_id, MassQuota.used).where(MassQuota.month == "202603")).all())


def _steps() -> dict[int, tuple[str, str | None, str | None]]:
    with session_scope() as s:
        return {m: (st, r, q) for m, st, r, q in s.execute(
            select(CampaignStep.member_id, CampaignStep.status, CampaignStep.reason, CampaignStep.quota_month))}


def test_planning_reserves_the_quota_and_skips_those_at_it(sandbox, manual_clock):
    # given 30 members, two at this month's quota already, and a campaign holding some out
    world = build_world(sandbox, members=30, stores=1, staff=3)
    full = world.members[:2]
    with session_scope() as s:
        s.execute(insert(MassQuota), [{"member_id": m, "month": "202603", "quota": 4, "used": 4} for m in full])
    cid, runs = launch_twice(world.segment_id, holdout={"percent": 20})
    # when the run is planned, before any call
    ledger.plan(runs[0], now=manual_clock(), batch=7)
    # then every sendable member holds one reservation of March, the full ones are skipped for the quota,
    # and the held-out members reserve nothing
    steps, used = _steps(), _quota()
    held = {m for m, (_, reason, _) in steps.items() if reason == "holdout"}
    for m in world.members:
        if m in held:
            assert steps[m] == ("skipped", "holdout", None) and used.get(m, 0) == (4 if m in full else 0)
        elif m in full:
            assert steps[m] == ("skipped", "monthly_quota", None) and used[m] == 4
        else:
            assert steps[m] == ("planned", None, "202603") and used[m] == 1
    assert sandbox.msg_tasks == {}


def test_cancel_before_the_fan_out_gives_every_reservation_back(sandbox, manual_clock):
    # given a planned run
    world = build_world(sandbox, members=20, stores=1, staff=2)
    cid, runs = launch_twice(world.segment_id)
    ledger.plan(runs[0], now=manual_clock())
    assert set(_quota().values()) == {1}
    # when the campaign is cancelled
    with recording(), session_scope() as s:
        service.cancel(s, campaign_id=cid)
    # then nothing is held any more, every row says why, and nothing was sent
    assert set(_quota().values()) == {0}
    assert {v for v in _steps().values()} == {("skipped", "cancelled", None)}
    assert fanout.run_job(runs[0]) == "cancelled" and sandbox.msg_tasks == {}


@pytest.mark.parametrize("errcode,status", [(40003, "failed"), (45009, "planned")])
def test_a_refused_call_gives_the_reservation_back_and_a_retry_takes_it_again(sandbox, manual_clock, errcode,
                                                                                status):
    # given a planned run whose first add_msg_template is refused (for good, or for the rate: tried again)
    world = build_world(sandbox, members=10, stores=1, staff=2)
    _, runs = launch_twice(world.segment_id)
    sandbox.inject("externalcontact/add_msg_template", *[errcode] * 10)  # more than the client's own retries
    # when the fan-out runs
    fanout.run_job(runs[0])
    # then the reservations are given back
    assert set(_quota().values()) == {0}
    assert {v[0] for v in _steps().values()} == {status}
    if status == "planned":
        # and when the retry goes through a minute later, each takes its reservation again, once
        sandbox.faults.clear()
        manual_clock.advance(minutes=2)
        fanout.run_job(runs[0])
        assert set(_quota().values()) == {1}
        assert {v[0] for v in _steps().values()} == {"submitted"}


def test_a_member_skipped_at_claim_time_gives_the_reservation_back(sandbox, manual_clock):
    # given a campaign capped at one message a week, and members contacted by another campaign meanwhile
    world = build_world(sandbox, members=12, stores=1, staff=2)
    cap = {"frequency_cap": {"max": 1, "per_days": 7}}
    _, first = launch_twice(world.segment_id, policy=cap)
    _, second = launch_twice(world.segment_id, policy=cap)
    ledger.plan(second[0], now=manual_clock())  # planned (and reserved) before the first campaign went out
    fanout.run_job(first[0])
    assert set(_quota().values()) == {2}
    # when the second campaign's chunks are claimed
    fanout.run_job(second[0])
    # then its members are skipped by the cap and hold only the first campaign's reservation
    with session_scope() as s:
        reasons = s.scalars(select(CampaignStep.reason).where(CampaignStep.run_id == second[0])).all()
        held = s.scalar(select(func.count()).select_from(CampaignStep).where(CampaignStep.quota_month.is_not(None)))
    assert set(reasons) == {"frequency_cap"}
    assert set(_quota().values()) == {1} and held == 12


def test_the_reservation_is_for_the_month_the_send_is_due(sandbox, manual_clock):
    # given members at April's quota, and a campaign launched at 23:00 on 31 March, inside quiet hours
    world = build_world(sandbox, members=4, stores=1, staff=2)
    with session_scope() as s:
        s.execute(insert(MassQuota), [{"member_id": m, "month": "202604", "quota": 4, "used": 4}
                                      for m in world.members])
    manual_clock.set(datetime(2026, 3, 31, 23, 0, tzinfo=CST))
    _, runs = launch_twice(world.segment_id)
    # when it is planned now, though it can only go at 09:00 on 1 April
    ledger.plan(runs[0], now=manual_clock())
    # then April's quota decides: they are skipped, and March holds nothing
    assert {v for v in _steps().values()} == {("skipped", "monthly_quota", None)}
    assert _quota() == {}
