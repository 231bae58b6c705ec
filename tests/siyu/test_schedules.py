"""The scheduler registry: every package's schedules install, each entry only enqueues, one process fires them."""
import importlib
import json
import time
from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi.testclient import TestClient

import siyu.server
from config.database import session_scope
from config.queue import QUEUES, func_name, in_process_runner, recording
from config.types import utcnow
from membership.models import Member, TimelineEvent
from config.settings import SettingsError, get_settings
from segments.service import create_segment
from siyu.schedules import check_overrides, elected_scheduler, install, schedules


def test_every_schedule_installs_with_a_valid_trigger(settings):
    sched = BackgroundScheduler(timezone=settings.tz)
    assert install(sched) == len(schedules()) >= 5
    ids = {job.id for job in sched.get_jobs()}
    assert {"webhooks.scheduled.enqueue_nightly_sync", "webhooks.scheduled.enqueue_sweep",
            "segments.scheduled.start_of_day"} <= ids
    # cron entries fire in the business time zone, not the server's
    start_of_day = sched.get_job("segments.scheduled.start_of_day")
    assert str(start_of_day.trigger.timezone) == "Asia/Shanghai"


def _row_counts() -> dict[str, int]:
    from sqlalchemy import func, select

    from siyu.models import metadata
    from webhooks.inbox import inbox_engine

    counts = {}
    for table in metadata.sorted_tables:
        engine = inbox_engine() if table.name in ("webhook_inbox", "webhook_nonces") else None
        with session_scope(engine) as s:
            counts[table.name] = s.scalar(select(func.count()).select_from(table))
    return counts


def test_each_entry_only_enqueues_one_job_a_worker_can_import(settings):
    # given every installed schedule, and a member that a segment made since would take in (so that a schedule
    # refreshing segments itself, instead of queueing the refresh, would write rows)
    with session_scope() as s:
        create_segment(s, name="加微", definition={"event": "contact.added"})
    assert in_process_runner().drain(30)
    with session_scope() as s:
        member = Member(name="客户")
        s.add(member)
        s.flush()
        s.add(TimelineEvent(member_id=member.id, type="contact.added", at=utcnow(), data={}))
    sched = BackgroundScheduler(timezone=settings.tz)
    install(sched)
    before = _row_counts()
    for job in sched.get_jobs():
        # when it fires
        with recording() as queued:
            job.func()
        # then it queued exactly one job, which is not the entry itself but a module-level function RQ can
        # import by its dotted name, and it wrote nothing itself: the work happens in a worker
        assert len(queued) == 1, job.id
        [work] = queued
        module, _, name = func_name(work.func).rpartition(".")
        assert getattr(importlib.import_module(module), name) is work.func and work.func is not job.func, job.id
        assert work.queue in QUEUES
    assert _row_counts() == before


def test_given_overrides_when_installed_then_the_schedule_uses_them_and_an_unknown_id_is_refused(settings, monkeypatch):
    # given the sweep moved to every 5 seconds
    monkeypatch.setenv("SIYU_SCHEDULE_OVERRIDES",
                       json.dumps({"webhooks.scheduled.enqueue_sweep": {"trigger": "interval", "seconds": 5}}))
    get_settings.cache_clear()
    check_overrides()
    # when installed, then that schedule fires every 5 seconds
    sched = BackgroundScheduler(timezone=settings.tz)
    install(sched)
    assert sched.get_job("webhooks.scheduled.enqueue_sweep").trigger.interval == timedelta(seconds=5)
    # and an override naming no schedule is a configuration error naming the variable
    monkeypatch.setenv("SIYU_SCHEDULE_OVERRIDES", json.dumps({"webhooks.scheduled.nope": {"trigger": "interval",
                                                                                           "seconds": 5}}))
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match="SIYU_SCHEDULE_OVERRIDES: no schedule 'webhooks.scheduled.nope'"):
        check_overrides()


def test_given_a_scheduler_that_lost_the_lease_when_a_schedule_fires_then_nothing_is_enqueued(settings):
    leading = [True]
    sched = BackgroundScheduler(timezone=settings.tz)
    install(sched, guard=lambda: leading[0])
    sweep = sched.get_job("webhooks.scheduled.enqueue_sweep")
    with recording() as queued:
        # given the lease is held, a fire enqueues
        sweep.func()
        assert [j.func.__name__ for j in queued] == ["sweep_inbox"]
        # when the lease is no longer held, then a fire enqueues nothing
        leading[0] = False
        sweep.func()
        assert [j.func.__name__ for j in queued] == ["sweep_inbox"]


def test_given_two_embedded_servers_on_one_var_dir_then_one_runs_the_schedules_until_it_stops(settings, monkeypatch):
    monkeypatch.setenv("SIYU_SCHEDULER_LEASE_SECONDS", "1")
    get_settings.cache_clear()
    electors = []
    monkeypatch.setattr(siyu.server, "elected_scheduler",
                        lambda *a, **kw: electors.append(elected_scheduler(*a, **kw)) or electors[-1])

    def wait(predicate):
        deadline = time.monotonic() + 10
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.02)
        return predicate()

    # given two embedded servers started on the same var/
    first = TestClient(siyu.server.create_server())
    first.__enter__()
    try:
        assert wait(lambda: electors and electors[0].leading())
        with TestClient(siyu.server.create_server()):
            # then the second stands by while the first runs the schedules
            time.sleep(0.5)  # several of the second's polls
            assert electors[0].leading() and not electors[1].leading()
            # when the first stops, then the second takes over
            first.__exit__(None, None, None)
            first = None
            assert wait(lambda: electors[1].leading())
            assert not electors[0].leading()
    finally:
        if first is not None:
            first.__exit__(None, None, None)
