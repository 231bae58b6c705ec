"""The scheduler registry: every package's schedules install, and each entry only enqueues."""
from apscheduler.schedulers.background import BackgroundScheduler

from siyu.schedules import install, schedules


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
    import config.queue

    queued = []
    monkeypatch.setattr(config.queue, "_dispatch", lambda func, args, queue, retries: queued.append(func.__name__))
    for func, _ in schedules():
        func()
    # one job per entry: the work itself happens in a worker, not in the scheduler process
    assert len(queued) == len(schedules())
