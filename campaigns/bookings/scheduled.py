"""Schedules of bookings (APScheduler cron kwargs, in SIYU_TIMEZONE); they only enqueue."""
from __future__ import annotations

from campaigns.bookings import jobs
from config.queue import enqueue


def no_show_sweep() -> None:
    """Enqueue the no-show sweep."""
    enqueue(jobs.sweep_no_shows, queue="low", retries=0)  # the next sweep is the retry


def reminder_sweep() -> None:
    """Enqueue the reminder sweep."""
    enqueue(jobs.sweep_reminders, queue="low", retries=0)


SCHEDULES = [
    (no_show_sweep, {"trigger": "cron", "minute": "*/10"}),
    (reminder_sweep, {"trigger": "cron", "minute": "7-59/30"}),
]
