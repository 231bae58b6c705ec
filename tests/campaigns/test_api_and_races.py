"""The campaigns API (validation, roles, state moves) and the ledger's invariants under concurrent workers."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from campaigns import fanout, ledger
from campaigns.models import CampaignStep, MassQuota
from config.database import session_scope
from config.queue import recording
from config.settings import get_settings
from siyu.app import create_app
from tests.campaigns.conftest import build_world
from tests.campaigns.test_mass_message import ADMIN, calls_by_sender, launch_twice, recipients, spec


@pytest.mark.parametrize("change,field", [
    ({"action": {"type": "oa_template"}}, "action"),
    ({"action": {"type": "wecom_mass_message", "text": "字" * 1400}}, "text"),
    ({"action": {"type": "wecom_mass_message", "text": "x", "attachments": [{}] * 10}}, "attachments"),
    ({"schedule": {"cron": "0 10 * *"}}, "cron"),
    ({"schedule": {"at": "2026-03-10T10:00:00"}}, "at"),
    ({"schedule": {"trigger": {"event": "no.such"}}}, "event"),
    ({"policy": {"quiet_hours": {"start": "25:00", "end": "09:00"}}}, "start"),
    ({"policy": {"frequency_cap": {"max": -1, "per_days": 7}}}, "max"),
    ({"audience": {"segment_id": 0}}, "segment_id"),
])
def test_an_invalid_spec_is_422_pointing_at_the_field(settings, change, field):
    with TestClient(create_app()) as client:
        answer = client.post("/api/v1/campaigns", json={**spec(1), **change}, headers=ADMIN)
    assert answer.status_code == 422
    assert any(field in [str(p) for p in issue["loc"]] for issue in answer.json()["detail"]), answer.json()


def test_moves_outside_the_state_machine_are_409_and_other_roles_403(settings):
    with TestClient(create_app()) as client:
        client.post("/api/v1/stores", json={"code": "S9", "name": "店"}, headers=ADMIN)
        token = client.post("/api/v1/tokens", json={"name": "店长", "role": "store_manager", "store": "S9"},
                            headers=ADMIN).json()["token"]
        assert client.post("/api/v1/campaigns", json=spec(1), headers={"Authorization": f"Bearer {token}"}) \
            .status_code == 403
        assert client.post("/api/v1/campaigns", json=spec(999), headers=ADMIN).status_code == 422
        assert client.get("/api/v1/campaigns/999", headers=ADMIN).status_code == 404


def test_pause_resume_cancel_move_along_contract_states(sandbox, manual_clock):
    world = build_world(sandbox, members=10, stores=1, staff=2)
    with recording(), TestClient(create_app()) as client:
        cid = client.post("/api/v1/campaigns", json=spec(world.segment_id, schedule={"cron": "0 10 * * MON"}),
                          headers=ADMIN).json()["id"]
        post = lambda move: client.post(f"/api/v1/campaigns/{cid}/{move}", headers=ADMIN)  # noqa: E731
        assert post("resume").status_code == 409
        assert post("launch").json()["status"] == "scheduled"
        assert post("pause").json()["status"] == "paused"
        assert post("launch").status_code == 409
        assert post("resume").json()["status"] == "scheduled"
        assert post("cancel").json()["status"] == "cancelled"
        assert post("cancel").status_code == 409
        # and a segment a live campaign uses is not deleted
        other = client.post("/api/v1/campaigns", json=spec(world.segment_id), headers=ADMIN).json()["id"]
        assert client.delete(f"/api/v1/segments/{world.segment_id}", headers=ADMIN).status_code == 409
        assert other


# Concurrency proofs: PostgreSQL only (SQLite has one writer); CI runs them against the real server.
ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _together(fn, n: int) -> None:
    start = threading.Barrier(n)
    errors: list[BaseException] = []

    def run():
        start.wait()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def fan_out_together(run_ids: list[int], workers_each: int = 2) -> None:
    """Fan the runs out at the same moment, `workers_each` workers on every run."""
    order = iter(run_ids * workers_each)
    lock = threading.Lock()

    def work():
        with lock:
            run_id = next(order)
        fanout.run_job(run_id)

    _together(work, len(run_ids) * workers_each)


@ON_POSTGRESQL
def test_four_workers_on_one_run_send_each_chunk_once(sandbox, manual_clock, monkeypatch):
    # given a launched campaign over 1,200 members and 12 staff, planned in batches of 100 members
    monkeypatch.setattr(ledger, "BATCH", 100)
    world = build_world(sandbox, members=1200, stores=3, staff=12)
    _, runs = launch_twice(world.segment_id)
    # when four workers plan and fan out the same run at once
    _together(lambda: fanout.run_job(runs[0]), 4)
    # then every staff member got one call, with exactly their customers, each once
    assert calls_by_sender(sandbox) == Counter({u: 1 for u in world.staff})
    got = recipients(sandbox)
    assert sorted(e for es in got.values() for e in es) == sorted(world.ext.values())
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CampaignStep)) == 1200


@ON_POSTGRESQL
def test_two_campaigns_at_once_never_pass_a_members_monthly_quota(sandbox, manual_clock, monkeypatch):
    # given a quota of one mass message a month and two campaigns to the same 400 members
    monkeypatch.setenv("SIYU_MASS_MESSAGE_MONTHLY_QUOTA", "1")
    get_settings.cache_clear()
    world = build_world(sandbox, members=400, stores=2, staff=4)
    run_a = launch_twice(world.segment_id)[1][0]
    run_b = launch_twice(world.segment_id)[1][0]
    # when both fan out at the same moment, two workers each
    fan_out_together([run_a, run_b])
    # then each member was sent once in all, the other campaign skipped them for the quota
    got = [e for es in recipients(sandbox).values() for e in es]
    assert sorted(got) == sorted(world.ext.values())
    with session_scope() as s:
        skipped = s.scalar(select(func.count()).select_from(CampaignStep).where(CampaignStep.reason == "monthly_quota"))
        assert s.scalar(select(func.max(MassQuota.used))) == 1
    assert skipped == 400


@ON_POSTGRESQL
def test_two_campaigns_sent_in_a_later_month_than_planned_never_pass_a_members_frequency_cap(sandbox, manual_clock):
    from datetime import datetime, timedelta, timezone

    # given two mass-message campaigns to the same 300 members, at most one message a week, planned on 10 March
    world = build_world(sandbox, members=300, stores=2, staff=3)
    policy = {"policy": {"frequency_cap": {"max": 1, "per_days": 7}}}
    run_a = launch_twice(world.segment_id, **policy)[1][0]
    run_b = launch_twice(world.segment_id, **policy)[1][0]
    for run in (run_a, run_b):
        ledger.plan(run, now=manual_clock(), batch=1000)
    # when both are sent at the same moment on 2 April (a month whose quota rows planning did not reserve)
    manual_clock.set(datetime(2026, 4, 2, 10, 0, tzinfo=timezone(timedelta(hours=8))).astimezone(timezone.utc))
    fan_out_together([run_a, run_b])
    # then each member got one message in all: the claims of the two campaigns were serialised per member
    got = Counter(e for es in recipients(sandbox).values() for e in es)
    assert got == Counter({e: 1 for e in world.ext.values()})
    with session_scope() as s:
        capped = s.scalar(select(func.count()).select_from(CampaignStep).where(CampaignStep.reason == "frequency_cap"))
    assert capped == 300
