"""Schedules of staff tasks (siyu scheduler): they only enqueue."""
from __future__ import annotations

from campaigns.tasks.service import remind_tick
from config.queue import enqueue


def enqueue_reminders() -> None:
    """Queue the tick that reminds staff of their overdue tasks (once each)."""
    enqueue(remind_tick, queue="low", retries=0, job_id="task-remind-tick")  # the next tick is the retry


SCHEDULES = [
    (enqueue_reminders, {"trigger": "cron", "minute": "*/5"}),
]
