"""The scheduler registry: every listed `scheduled.SCHEDULES` (siyu.packages), run by APScheduler in SIYU_TIMEZONE.

Entries only enqueue jobs; the work happens in workers (or the in-process runner in embedded mode).
Only the process that holds the scheduler lease (siyu.leader) fires them.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler

from config.settings import SettingsError, get_settings
from siyu import packages
from siyu.leader import Elector, Lease

log = logging.getLogger(__name__)


def schedules() -> list[tuple]:
    """(function, trigger kwargs) of every module in siyu.packages.SCHEDULES."""
    return [entry for module in packages.modules(packages.SCHEDULES) for entry in module.SCHEDULES]


def schedule_id(func: Callable) -> str:
    """`module.function`: the id of a schedule in APScheduler and in SIYU_SCHEDULE_OVERRIDES."""
    return f"{func.__module__}.{func.__name__}"


def check_overrides() -> None:
    """SettingsError naming SIYU_SCHEDULE_OVERRIDES when it names a schedule that does not exist."""
    known = {schedule_id(func) for func, _ in schedules()}
    unknown = sorted(set(get_settings().schedule_overrides) - known)
    if unknown:
        raise SettingsError(f"SIYU_SCHEDULE_OVERRIDES: no schedule {unknown[0]!r}; schedules are {sorted(known)}")


def install(scheduler: BaseScheduler, guard: Callable[[], bool] | None = None) -> int:
    """Add every registered schedule to `scheduler` (each fire first asks `guard`); returns how many."""
    settings = get_settings()
    entries = schedules()
    for func, trigger in entries:
        job_id = schedule_id(func)
        kwargs = dict(settings.schedule_overrides.get(job_id, trigger))
        kind = kwargs.pop("trigger")
        if kind == "cron":
            kwargs.setdefault("timezone", settings.tz)
        scheduler.add_job(_guarded(func, job_id, guard) if guard else func, kind, id=job_id, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=300, **kwargs)
        log.info("schedule %s: %s %s", job_id, kind, kwargs)
    return len(entries)


def _guarded(func: Callable, job_id: str, guard: Callable[[], bool]) -> Callable:
    @functools.wraps(func)
    def fire():
        # The heartbeat stops the scheduler when the lease is lost; this covers a heartbeat that is stuck.
        if not guard():
            log.warning("schedule %s: not fired, this scheduler does not hold the lease", job_id)
            return None
        log.info("schedule %s: fired", job_id)
        return func()

    return fire


def elected_scheduler(lease: Lease, say: Callable[[str], None] | None = None) -> Elector:
    """An Elector that runs every schedule in a BackgroundScheduler while `lease` is held, and none otherwise."""
    settings = get_settings()
    running: list[BackgroundScheduler] = []

    def start() -> None:
        sched = BackgroundScheduler(timezone=settings.tz)
        count = install(sched, guard=elector.leading)
        sched.start()
        running.append(sched)
        log.info("scheduler: %d schedules in %s", count, settings.timezone)

    def stop() -> None:
        while running:
            running.pop().shutdown(wait=False)

    every = lease.ttl / 3
    elector = Elector(lease, start, stop, renew_every=every, poll_every=every, **({"say": say} if say else {}))
    return elector
