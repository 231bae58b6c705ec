"""Scheduled entries of the intake: they only enqueue."""
from __future__ import annotations

from config.queue import enqueue
from webhooks.retention import purge_inbox_payloads


def enqueue_sweep() -> None:
    """Queue the inbox sweeper, which re-enqueues events whose job was lost (Redis down, a worker killed)."""
    from webhooks.jobs import sweep_inbox

    enqueue(sweep_inbox, queue="low", retries=0)  # the next minute's sweep is the retry


def enqueue_inbox_purge() -> None:
    """Queue the daily purge of inbox payloads past SIYU_INBOX_RETENTION_DAYS."""
    enqueue(purge_inbox_payloads, queue="low", retries=1)  # tomorrow's run catches up on what is left


SCHEDULES = [
    (enqueue_sweep, {"trigger": "interval", "seconds": 60}),
    (enqueue_inbox_purge, {"trigger": "cron", "hour": 4, "minute": 20}),  # a quiet hour in SIYU_TIMEZONE
]
