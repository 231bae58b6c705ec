"""The scheduler registry: every package's `scheduled.SCHEDULES`, run by APScheduler in SIYU_TIMEZONE.

Entries only enqueue jobs; the work happens in workers (or the in-process runner in embedded mode).
"""
from __future__ import annotations

import importlib
import logging

from apscheduler.schedulers.base import BaseScheduler

from config.settings import get_settings

log = logging.getLogger(__name__)

PACKAGES = ("bot", "webhooks", "segments", "campaigns")


def schedules() -> list[tuple]:
    """(function, trigger kwargs) of every package that has a `scheduled` module."""
    found = []
    for package in PACKAGES:
        try:
            module = importlib.import_module(f"{package}.scheduled")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.scheduled":
                raise
            continue
        found.extend(getattr(module, "SCHEDULES", []))
    return found


def install(scheduler: BaseScheduler) -> int:
    """Add every registered schedule to `scheduler`; returns how many."""
    tz = get_settings().tz
    entries = schedules()
    for func, trigger in entries:
        kwargs = dict(trigger)
        kind = kwargs.pop("trigger")
        if kind == "cron":
            kwargs.setdefault("timezone", tz)
        scheduler.add_job(func, kind, id=f"{func.__module__}.{func.__name__}", replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=300, **kwargs)
        log.info("schedule %s.%s: %s %s", func.__module__, func.__name__, kind, kwargs)
    return len(entries)
