"""Scheduled entries of the intake: they only enqueue."""
from __future__ import annotations

from config.queue import enqueue


def enqueue_sweep() -> None:
    """Queue the inbox sweeper, which re-enqueues events whose job was lost (Redis down, a worker killed)."""
    from webhooks.jobs import sweep_inbox

    enqueue(sweep_inbox, queue="low", retries=0)  # the next minute's sweep is the retry


SCHEDULES = [(enqueue_sweep, {"trigger": "interval", "seconds": 60})]
