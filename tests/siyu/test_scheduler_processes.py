"""Two real `siyu scheduler` processes on one Redis: one fires, the other stands by and takes over when it dies."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from rq import Queue

from siyu.leader import KEY

SWEEP = "webhooks.scheduled.enqueue_sweep"
FIRED = f"schedule {SWEEP}: fired"


def _start(env: dict, log: Path) -> subprocess.Popen:
    siyu = Path(sys.executable).with_name("siyu")
    return subprocess.Popen([str(siyu), "scheduler"], cwd=log.parent, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _sweeps(redis: Redis) -> int:
    return sum(job.func_name == "webhooks.jobs.sweep_inbox" for job in Queue("low", connection=redis).get_jobs())


def test_given_two_schedulers_when_the_active_one_is_killed_then_the_other_takes_over_and_nothing_runs_twice(
        redis_url, tmp_path):
    redis = Redis.from_url(redis_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env.update(SIYU_REDIS_URL=redis_url, SIYU_DATABASE_URL=f"sqlite:///{tmp_path}/siyu.db",
               SIYU_VAR_DIR=str(tmp_path / "var"), SIYU_SCHEDULER_LEASE_SECONDS="2",
               SIYU_SCHEDULE_OVERRIDES=json.dumps({SWEEP: {"trigger": "interval", "seconds": 1}}))
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = _start(env, a_log)
    b = None
    try:
        # given scheduler a is active and firing the (one-second) sweep
        assert _wait(lambda: "scheduler: active (" in a_log.read_text()), a_log.read_text()
        owner = a_log.read_text().split("scheduler: active (", 1)[1].split(")", 1)[0]
        # when a second scheduler starts, then it says it stands by and names a
        b = _start(env, b_log)
        assert _wait(lambda: f"scheduler: standing by (active: {owner})" in b_log.read_text()), b_log.read_text()
        assert _wait(lambda: _sweeps(redis) >= 3)
        # when a is killed outright (nobody renews its lease)
        os.killpg(a.pid, signal.SIGKILL)
        a.wait(10)
        at_kill = _sweeps(redis)
        # then every sweep queued so far was a's: b fired nothing while a was active
        assert a_log.read_text().count(FIRED) == at_kill
        assert FIRED not in b_log.read_text() and "scheduler: active" not in b_log.read_text()
        # and b takes over once the lease runs out, and fires
        assert _wait(lambda: "scheduler: active (" in b_log.read_text()), b_log.read_text()
        assert _wait(lambda: _sweeps(redis) >= at_kill + 2)
        # when b is stopped, then it gives the lease up and exits cleanly
        os.killpg(b.pid, signal.SIGTERM)
        assert b.wait(15) == 0
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    # then each sweep was queued by exactly one fire of exactly one scheduler
    assert _sweeps(redis) == a_log.read_text().count(FIRED) + b_log.read_text().count(FIRED)
    assert redis.get(KEY) is None
