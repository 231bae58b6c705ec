"""Schedules of the segments package (APScheduler cron kwargs, in SIYU_TIMEZONE); they only enqueue."""
from __future__ import annotations

from config.queue import enqueue
from segments import jobs, wecom_tags


def start_of_day() -> None:
    """Enqueue the refresh of every date-relative segment as a business day begins."""
    enqueue(jobs.refresh_relative_segments, queue="low")


def nightly() -> None:
    """Enqueue a refresh of every segment, to catch changes that wrote no timeline event."""
    enqueue(jobs.refresh_all_segments, queue="low")


def wecom_tag_sweep() -> None:
    """Enqueue a WeCom tag sync, picking up changes whose after-commit enqueue was lost."""
    enqueue(wecom_tags.sync_wecom_tags, queue="low")


SCHEDULES = [
    (start_of_day, {"trigger": "cron", "hour": 0, "minute": 5}),
    (nightly, {"trigger": "cron", "hour": 3, "minute": 30}),
    (wecom_tag_sweep, {"trigger": "cron", "minute": "*/5"}),
]
