"""The scheduler registry: every package's schedules install, each entry only enqueues, one process fires them."""
import json
import time
from datetime import timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from fastapi.testclient import TestClient

import config.queue
import siyu.server
from config.settings import SettingsError, get_settings
from siyu.schedules import check_overrides, elected_scheduler, install, schedules


def test_every_schedule_installs_with_a_valid_trigger(settings):
    sched = BackgroundScheduler(timezone=settings.tz)
    assert install(sched) == len(schedules()) >= 5
    ids = {job.id for job in sched.get_jobs()}
    assert {"bot.scheduled.enqueue_nightly_sync", "webhooks.scheduled.enqueue_sweep",
            "segments.scheduled.start_of_day"} <= ids
    # cron entries fire in the business time zone, not the server's
    start_of_day = sched.get_job("segments.scheduled.start_of_day")
    assert str(start_of_day.trigger.timezone) == "Asia/Shanghai"


def test_each_entry_only_enqueues(settings, monkeypatch):
    queued = []
    monkeypatch.setattr(config.queue, "_dispatch", lambda func, args, queue, retries: queued.append(func.__name__))
    for func, _ in schedules():
        func()
    # one job per entry: the work itself happens in a worker, not in the scheduler process
    assert len(queued) == len(schedules())


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


def test_given_a_scheduler_that_lost_the_lease_when_a_schedule_fires_then_nothing_is_enqueued(settings, monkeypatch):
    queued = []
    monkeypatch.setattr(config.queue, "_dispatch", lambda func, args, queue, retries: queued.append(func.__name__))
    leading = [True]
    sched = BackgroundScheduler(timezone=settings.tz)
    install(sched, guard=lambda: leading[0])
    sweep = sched.get_job("webhooks.scheduled.enqueue_sweep")
    # given the lease is held, a fire enqueues
    sweep.func()
    assert queued == ["sweep_inbox"]
    # when the lease is no longer held, then a fire enqueues nothing
    leading[0] = False
    sweep.func()
    assert queued == ["sweep_inbox"]


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
