"""Schedules of the bot: they only enqueue jobs."""
from __future__ import annotations

from config.queue import enqueue


def enqueue_nightly_sync() -> None:
    """Queue the nightly `sync wecom` on the low-priority queue."""
    from bot.jobs import sync_wecom_job

    enqueue(sync_wecom_job, queue="low", retries=1)


SCHEDULES = [(enqueue_nightly_sync, {"trigger": "cron", "hour": 3, "minute": 17})]
