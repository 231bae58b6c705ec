"""Scheduled entries of the intake: they only enqueue."""
from __future__ import annotations

from config.queue import enqueue
from webhooks.jobs import sweep_inbox, sync_wecom_job
from webhooks.retention import purge_inbox_payloads
from webhooks.transfers import jobs as transfer_jobs


def enqueue_sweep() -> None:
    """Queue the inbox sweeper, which re-enqueues events whose job was lost (Redis down, a worker killed)."""
    enqueue(sweep_inbox, queue="low", retries=0)  # the next minute's sweep is the retry


def enqueue_inbox_purge() -> None:
    """Queue the daily purge of inbox payloads past SIYU_INBOX_RETENTION_DAYS."""
    enqueue(purge_inbox_payloads, queue="low", retries=1)  # tomorrow's run catches up on what is left


def enqueue_nightly_sync() -> None:
    """Queue the nightly `sync wecom`, which reconciles what lost or reordered callbacks left behind."""
    enqueue(sync_wecom_job, queue="low", retries=1)


def enqueue_transfer_poll() -> None:
    """Queue the poll of transfer_result that settles open handovers of customers."""
    enqueue(transfer_jobs.poll_transfers_job, queue="low", retries=0)  # the next poll is the retry


SCHEDULES = [
    (enqueue_sweep, {"trigger": "interval", "seconds": 60}),
    (enqueue_inbox_purge, {"trigger": "cron", "hour": 4, "minute": 20}),  # a quiet hour in SIYU_TIMEZONE
    (enqueue_nightly_sync, {"trigger": "cron", "hour": 3, "minute": 17}),
    (enqueue_transfer_poll, {"trigger": "interval", "minutes": 10}),
]
