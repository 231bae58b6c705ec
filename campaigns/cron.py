"""Cron expressions of campaign schedules: crontab's five fields, in SIYU_TIMEZONE.

APScheduler numbers weekdays from Monday = 0, crontab from Sunday = 0 (7 too): numbers in the weekday field
are translated to names, so `0 10 * * 1` means Monday as it does in crontab.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekdays(field: str) -> str:
    return re.sub(r"(?<![/\d])(\d+)", lambda m: _DAYS[int(m.group(1)) % 7] if int(m.group(1)) <= 7 else m.group(1),
                  field)


def trigger(expr: str, tz: ZoneInfo) -> CronTrigger:
    """The trigger of a five-field crontab expression; ValueError for anything else."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expr!r}: five fields (minute hour day month weekday), e.g. '0 10 * * MON'")
    minute, hour, day, month, dow = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(dow.lower()),
                       timezone=tz)


def occurrences(expr: str, tz: ZoneInfo, after: datetime, through: datetime, limit: int = 1000) -> list[datetime]:
    """Fire times in (after, through], oldest first, at most `limit` (the newest ones)."""
    trig = trigger(expr, tz)
    out: list[datetime] = []
    t = trig.get_next_fire_time(None, after + timedelta(seconds=1))
    while t is not None and t <= through:
        out.append(t)
        t = trig.get_next_fire_time(t, t + timedelta(seconds=1))
    return out[-limit:]
