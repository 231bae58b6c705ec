"""Schedules of the campaign engine (siyu scheduler, SIYU_TIMEZONE): they only enqueue."""
from __future__ import annotations

from campaigns.ticks import tick
from config.queue import enqueue


def enqueue_tick() -> None:
    """Queue the engine's tick: due `at`/`cron` runs, interrupted fan-outs, lost trigger entries, result polls."""
    enqueue(tick, queue="default", retries=0, job_id="campaign-tick")  # the next minute's tick is the retry


SCHEDULES = [
    (enqueue_tick, {"trigger": "interval", "seconds": 60}),
]
