"""Scheduled entries of group-buy: they only enqueue."""
from __future__ import annotations

from config.queue import enqueue
from campaigns.groupbuy.jobs import sweep


def enqueue_groupbuy_sweep() -> None:
    """Queue the sweep that releases lost holds, fails groups past their deadline and retries open refunds."""
    enqueue(sweep, queue="low", retries=0)  # the next minute's sweep is the retry


SCHEDULES = [(enqueue_groupbuy_sweep, {"trigger": "interval", "seconds": 60})]
