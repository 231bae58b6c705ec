"""Interrupted fan-outs: an unknown call is reconciled against get_groupmsg_list_v2, pause and resume never
rewind; on PostgreSQL + Redis with `siyu worker` processes, a 50,000-member fan-out whose workers are SIGKILLed
and restarted, or paused and resumed, sends every member exactly once (ledger and sandbox agree)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.clients import wecom_client
from bot.errors import TransportError
from campaigns import fanout, mass_message, service
from campaigns.models import CampaignSend, CampaignStep
from config.database import session_scope
from config.queue import recording
from config.settings import get_settings
from tests.campaigns.conftest import build_world
from tests.campaigns.test_mass_message import calls_by_sender, launch_twice, recipients
from tests.conftest import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parents[2]


class Flaky:
    """The real client, except that add_msg_template's answer is lost (`after`) or never sent (`before`)."""

    def __init__(self, when: str, times: int = 1):
        self.real, self.when, self.left = wecom_client(), when, times

    def __getattr__(self, name):
        return getattr(self.real, name)

    def add_msg_template(self, body):
        if self.left:
            self.left -= 1
            if self.when == "after":
                self.real.add_msg_template(body)
            raise TransportError(None, "ReadTimeout: the answer was lost", "externalcontact/add_msg_template")
        return self.real.add_msg_template(body)


@pytest.mark.parametrize("when", ["after", "before"])
def test_an_interrupted_call_is_reconciled_before_any_retry(sandbox, manual_clock, monkeypatch, when):
    # given a campaign whose first call's answer is lost (WeCom made the task, or never got the call)
    world = build_world(sandbox, members=30, stores=1, staff=3)
    sandbox.advance(manual_clock().timestamp() - sandbox.now())  # WeCom's clock and ours agree, as they do live
    flaky = Flaky(when)
    monkeypatch.setattr(mass_message, "wecom_client", lambda: flaky)
    _, runs = launch_twice(world.segment_id)
    fanout.run_job(runs[0])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(CampaignSend).where(CampaignSend.status == "unknown")) == 1
    # when the engine comes back to the run a little later
    manual_clock.advance(minutes=2)
    fanout.run_job(runs[0])
    # then WeCom has exactly one task per staff member: the lost one was found, or made once now
    assert calls_by_sender(sandbox) == {u: 1 for u in world.staff}
    with session_scope() as s:
        statuses = set(s.scalars(select(CampaignSend.status)))
        msgids = set(s.scalars(select(CampaignSend.msgid)))
    assert statuses == {"submitted"} and msgids == set(sandbox.msg_tasks)


def test_pause_mid_fan_out_then_resume_sends_the_rest_once(sandbox, manual_clock):
    # given a campaign whose fan-out has sent 3 of its 8 chunks
    world = build_world(sandbox, members=80, stores=2, staff=8)
    cid, runs = launch_twice(world.segment_id)
    from campaigns.ledger import plan

    plan(runs[0], now=manual_clock())
    fanout.fan_out(runs[0], limit=3)
    # when it is paused, workers find nothing to claim
    with recording(), session_scope() as s:
        service.pause(s, campaign_id=cid)
    assert fanout.run_job(runs[0]) == "0 chunks"
    assert len(sandbox.msg_tasks) == 3
    # when it is resumed, the rest go, and nothing twice
    with recording() as jobs, session_scope() as s:
        service.resume(s, campaign_id=cid)
    for job in jobs:
        job.func(*job.args)
    assert calls_by_sender(sandbox) == {u: 1 for u in world.staff}
    assert sorted(e for es in recipients(sandbox).values() for e in es) == sorted(world.ext.values())


# -- SIGKILL of the worker (PostgreSQL + Redis + a `siyu worker` process) ---------------------------------
def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).with_name("siyu")), "worker"], cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _count(*where) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(CampaignSend).where(*where))


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def rq_world(pg_url, redis_url, sandbox_server, tmp_path, monkeypatch):
    from bot.clients import reset_clients
    from bot.sandbox.state import reset_state

    env = {"SIYU_DATABASE_URL": pg_url, "SIYU_REDIS_URL": redis_url, "SIYU_VAR_DIR": str(tmp_path / "var"),
           "SIYU_ADMIN_TOKEN": ADMIN_TOKEN, "SIYU_PUBLIC_URL": sandbox_server, "SIYU_WECHAT_BACKOFF_BASE": "0.001",
           "SIYU_QUIET_HOURS": "", "SIYU_CAMPAIGN_LEASE_SECONDS": "2"}  # real time: no quiet hours, short leases
    for name in list(os.environ):
        if name.startswith(("SIYU_WECOM_", "SIYU_OA_", "SIYU_MP_", "SIYU_PAY_")):
            monkeypatch.delenv(name)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    reset_clients()
    yield reset_state(), {**os.environ, "PYTHONPATH": str(ROOT)}
    reset_clients()
    get_settings.cache_clear()


MEMBERS, STAFF = 50_000, 40  # 40 calls of 1,250 customers: add_msg_template takes up to 10,000 each


def _fan_out_with_workers(rq_world, interrupt) -> object:
    """Launch a 50,000-member campaign on RQ, let two `siyu worker` processes start its fan-out, `interrupt`
    them in the middle, then let it finish; the world."""
    from campaigns.fanout import enqueue_run

    sandbox, env = rq_world
    world = build_world(sandbox, members=MEMBERS, stores=3, staff=STAFF)
    sandbox.msg_template_delay = 0.2  # each call takes a moment, so the interruption lands mid fan-out
    cid, runs = launch_twice(world.segment_id)  # queued on RQ (recorded here: started below)
    enqueue_run(runs[0])
    workers = [_worker(env), _worker(env)]
    try:
        # given workers in the middle of the fan-out
        assert _wait(lambda: _count(CampaignSend.status == "submitted") >= 5, 180), "the fan-out did not start"
        interrupt(cid, workers)
        assert _wait(lambda: _count(CampaignSend.status != "submitted") == 0, 300), "the fan-out did not finish"
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGKILL)
            w.wait(10)
    return world


def _exactly_once(sandbox, world) -> None:
    # every member is in exactly one WeCom task, of their staff member, and the ledger says the same
    got = recipients(sandbox)
    flat = [e for es in got.values() for e in es]
    assert len(flat) == len(set(flat)) == MEMBERS
    assert {u: sorted(es) for u, es in got.items()} == {
        u: sorted(world.ext[m] for m in world.members if world.owner[m] == u) for u in world.staff}
    assert calls_by_sender(sandbox) == {u: 1 for u in world.staff}
    with session_scope() as s:
        assert set(s.scalars(select(CampaignStep.status))) == {"submitted"}
        assert s.scalar(select(func.count()).select_from(CampaignStep)) == MEMBERS
        assert set(s.scalars(select(CampaignSend.msgid))) == set(sandbox.msg_tasks)
        ledger = dict(s.execute(select(CampaignStep.external_userid, CampaignSend.msgid)
                                .join(CampaignSend, CampaignSend.id == CampaignStep.send_id)).all())
    wecom = {r["external_userid"]: msgid for msgid, t in sandbox.msg_tasks.items()
             for sender in t["senders"].values() for r in sender["results"]}
    assert ledger == wecom


def test_sigkill_of_the_workers_mid_fan_out_then_restart_sends_every_member_exactly_once(rq_world):
    from campaigns.ticks import tick

    sandbox, env = rq_world

    def kill_and_restart(cid, workers):
        # when they are killed outright
        for w in workers:
            os.killpg(w.pid, signal.SIGKILL)
            w.wait(10)
        assert _count(CampaignSend.status == "submitted") < STAFF
        # and new workers start, and the tick finds the run (expired claims are reconciled first)
        workers[:] = [_worker(env), _worker(env)]
        time.sleep(2.5)
        tick()

    world = _fan_out_with_workers(rq_world, kill_and_restart)
    _exactly_once(sandbox, world)


def test_pause_mid_fan_out_on_rq_workers_then_resume_sends_every_member_exactly_once(rq_world):
    sandbox, _ = rq_world

    def pause_then_resume(cid, workers):
        # when the campaign is paused, the calls under way finish, the run jobs end finding nothing to claim
        from rq.registry import StartedJobRegistry

        from config.redis import get_redis

        with session_scope() as s:
            service.pause(s, campaign_id=cid)
        started = StartedJobRegistry("default", connection=get_redis())
        assert _wait(lambda: started.count == 0 and _count(CampaignSend.status == "claimed") == 0, 60)
        held = _count(CampaignSend.status == "submitted")
        time.sleep(1.0)
        assert _count(CampaignSend.status == "submitted") == held < STAFF
        # and when it is resumed, the workers go on from the ledger
        with session_scope() as s:
            service.resume(s, campaign_id=cid)

    world = _fan_out_with_workers(rq_world, pause_then_resume)
    _exactly_once(sandbox, world)
