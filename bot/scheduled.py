"""Schedules of the bot: they only enqueue jobs."""
from __future__ import annotations

from bot.transfers import jobs as transfer_jobs
from config.queue import enqueue


def enqueue_nightly_sync() -> None:
    """Queue the nightly `sync wecom` on the low-priority queue."""
    from bot.jobs import sync_wecom_job

    enqueue(sync_wecom_job, queue="low", retries=1)


def enqueue_transfer_poll() -> None:
    """Queue the poll of transfer_result that settles open handovers of customers."""
    enqueue(transfer_jobs.poll_transfers_job, queue="low", retries=0)  # the next poll is the retry


SCHEDULES = [
    (enqueue_nightly_sync, {"trigger": "cron", "hour": 3, "minute": 17}),
    (enqueue_transfer_poll, {"trigger": "interval", "minutes": 10}),
]
