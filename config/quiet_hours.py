"""Quiet hours: the daily span of business time in which Siyu sends nothing to a customer.

A span is `HH:MM-HH:MM` in SIYU_TIMEZONE and may wrap midnight (`21:00-09:00`). A send due inside it waits
for its end (`next_allowed`); a reminder that must arrive before something waits for nothing and moves
earlier instead (`last_allowed_before`). Both campaigns and booking reminders use this one definition.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

_SPAN = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")


@dataclass(frozen=True)
class QuietHours:
    """From `start` (inclusive) to `end` (exclusive) every day; start == end means no quiet hours."""

    start: time
    end: time

    @classmethod
    def parse(cls, spec: str | None) -> QuietHours | None:
        """`"21:00-09:00"` → QuietHours; None or '' → None; ValueError for anything else."""
        if spec is None or not spec.strip():
            return None
        m = _SPAN.match(spec)
        if m is None:
            raise ValueError(f"quiet hours {spec!r}: expected HH:MM-HH:MM, e.g. 21:00-09:00")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        return cls(time(h1, m1), time(h2, m2))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, at: datetime, tz: ZoneInfo) -> bool:
        """Whether the aware instant `at` falls inside quiet hours in `tz`."""
        if self.start == self.end:
            return False
        local = at.astimezone(tz).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, at: datetime, tz: ZoneInfo) -> datetime:
        """`at` itself when it is outside quiet hours, else the (UTC) instant they end."""
        if not self.contains(at, tz):
            return at
        local = at.astimezone(tz)
        day = local.date() if (self.start > self.end and local.time() < self.end) or self.start < self.end \
            else local.date() + timedelta(days=1)
        return _instant(day, self.end, tz)

    def last_allowed_before(self, at: datetime, tz: ZoneInfo) -> datetime:
        """`at` itself when it is outside quiet hours, else the last minute before they began (UTC)."""
        if not self.contains(at, tz):
            return at
        local = at.astimezone(tz)
        day = local.date() if (self.start < self.end or local.time() >= self.start) \
            else local.date() - timedelta(days=1)
        return _instant(day, self.start, tz) - timedelta(minutes=1)


def _instant(day, clock: time, tz: ZoneInfo) -> datetime:
    # fold=0 takes the first of two instants a DST fall-back repeats; a skipped time maps past the gap.
    return datetime.combine(day, clock, tz).astimezone(timezone.utc)
