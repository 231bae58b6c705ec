"""`siyu doctor` channel checks and the nightly sync registration."""
from __future__ import annotations

from bot.doctor import run_checks
from bot.scheduled import SCHEDULES, enqueue_nightly_sync


def test_given_the_sandbox_when_doctor_runs_then_every_channel_check_is_green(sandbox):
    checks = run_checks()
    assert checks and all(c.ok for c in checks), [c.line for c in checks if not c.ok]
    assert any(c.line.startswith("wecom contact secret: access token fetched from the sandbox") for c in checks)


def test_given_a_wrong_secret_when_doctor_runs_then_the_line_names_the_errcode(sandbox):
    sandbox.wecom_secrets.clear()
    bad = [c for c in run_checks() if not c.ok]
    assert bad and "errcode 40001" in bad[0].line


def test_the_nightly_sync_is_scheduled_and_only_enqueues(monkeypatch):
    queued = []
    monkeypatch.setattr("bot.scheduled.enqueue", lambda func, *a, **kw: queued.append((func.__name__, kw)))
    assert [(f, t["trigger"]) for f, t in SCHEDULES] == [(enqueue_nightly_sync, "cron")]
    enqueue_nightly_sync()
    assert queued == [("sync_wecom_job", {"queue": "low", "retries": 1})]
