"""SIGKILL of the RQ worker in the middle of a burst loses nothing and doubles nothing (Redis + PostgreSQL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.sandbox import events as tencent
from config.database import session_scope
from config.settings import get_settings
from membership.models import Relation, TimelineEvent
from tests.conftest import ADMIN_TOKEN
from tests.webhooks.conftest import ADMIN, wecom_creds, wecom_post
from webhooks.models import InboxEvent

ROOT = Path(__file__).resolve().parents[2]
BURST = 40


def _worker(env: dict) -> subprocess.Popen:
    # `siyu worker`, as deployed: jobs run in the worker process, so SIGKILL takes a job down mid-transaction
    return subprocess.Popen([str(Path(sys.executable).with_name("siyu")), "worker"], cwd=ROOT, env=env,
                            start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _done() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "done"))


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def rq_setup(pg_url, redis_url, sandbox_server, tmp_path, monkeypatch):
    from bot.clients import reset_clients
    from bot.sandbox.state import reset_state

    env = {"SIYU_DATABASE_URL": pg_url, "SIYU_REDIS_URL": redis_url, "SIYU_VAR_DIR": str(tmp_path / "var"),
           "SIYU_ADMIN_TOKEN": ADMIN_TOKEN, "SIYU_PUBLIC_URL": sandbox_server,
           "SIYU_WECHAT_BACKOFF_BASE": "0.001"}
    for name in list(os.environ):
        if name.startswith(("SIYU_WECOM_", "SIYU_OA_", "SIYU_MP_", "SIYU_PAY_")):
            monkeypatch.delenv(name)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    reset_clients()
    state = reset_state()
    yield state, {**os.environ, "PYTHONPATH": str(ROOT)}
    reset_clients()
    get_settings.cache_clear()


def test_killing_the_worker_mid_burst_loses_and_doubles_nothing(rq_setup, monkeypatch):
    from fastapi.testclient import TestClient

    import webhooks.jobs as jobs
    from siyu.app import create_app

    sandbox, env = rq_setup
    corp = wecom_creds().corp_id
    sandbox.add_staff("zhangsan")
    with TestClient(create_app()) as client:
        client.post("/api/v1/stores", json={"code": "S001", "name": "店"}, headers=ADMIN)
        client.post("/api/v1/staff", json={"userid": "zhangsan", "name": "张三", "store": "S001"}, headers=ADMIN)
        state = client.post("/api/v1/channel-codes", headers=ADMIN, json={
            "name": "码", "store": "S001", "staff": ["zhangsan"], "tags": ["新客"]}).json()["state"]
        events = []
        for i in range(BURST):
            ext = sandbox.add_external_contact("zhangsan", external_userid=f"wmKILL{i:04d}", state=state)
            events.append(tencent.add_external_contact(corp, "zhangsan", ext, state=state,
                                                       create_time=1700000000 + i))
        worker = _worker(env)
        try:
            # given a worker busy with the first half of a burst
            for plaintext in events[: BURST // 2]:
                assert wecom_post(client, wecom_creds(), plaintext).status_code == 200
            assert _wait(lambda: _done() >= 3, 60), "the worker did not start"
        finally:
            # when it is killed outright, mid-burst
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        # and the burst goes on (delivered twice) while no worker runs
        for plaintext in events[BURST // 2:] + events:
            assert wecom_post(client, wecom_creds(), plaintext).status_code == 200
    assert _done() < BURST
    # and a new worker starts and the sweeper finds what the dead one held
    worker = _worker(env)
    try:
        monkeypatch.setattr(jobs, "SWEEP_AFTER", timedelta(0))
        jobs.sweep_inbox()
        assert _wait(lambda: _done() == BURST, 90), f"only {_done()} of {BURST} handled"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    # then every customer has exactly one relation, one contact.added and one tag
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(InboxEvent)) == BURST
        assert s.scalar(select(func.count()).select_from(Relation)) == BURST
        added = list(s.scalars(select(TimelineEvent.member_id).where(TimelineEvent.type == "contact.added")))
        tagged = list(s.scalars(select(TimelineEvent.member_id).where(TimelineEvent.type == "tag.added")))
    assert len(added) == len(set(added)) == BURST
    assert len(tagged) == len(set(tagged)) == BURST
