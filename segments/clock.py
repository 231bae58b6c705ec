"""What "today" means to a definition: the business day in SIYU_TIMEZONE, injectable for tests and the bench."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from config.settings import get_settings


@dataclass(frozen=True)
class EvalContext:
    """The day a definition is evaluated on, in the business time zone."""

    today: date
    tz: ZoneInfo

    def day_start(self, day: date) -> datetime:
        """The UTC instant the business day `day` begins."""
        return datetime.combine(day, time(0), self.tz).astimezone(timezone.utc)

    def window_start(self, within_days: int) -> date:
        """First bucket day of a window of `within_days` days ending today (today counts as one)."""
        return self.today - timedelta(days=within_days - 1)

    @property
    def offset(self) -> timedelta:
        """The zone's UTC offset today; anniversaries use it as a fixed offset so SQLite and Python agree."""
        return datetime.combine(self.today, time(12), self.tz).utcoffset() or timedelta(0)

    def anniversary_days(self, within_days: int) -> tuple[int, ...]:
        """Month·100+day of every day from today to `within_days` days ahead."""
        days = {self.today + timedelta(days=i) for i in range(within_days + 1)}
        return tuple(sorted(d.month * 100 + d.day for d in days))


def bucket_day(at: datetime, tz: ZoneInfo) -> date:
    """The business day an event falls on (its counter bucket)."""
    return at.astimezone(tz).date()


def context(today: date | None = None, tz: ZoneInfo | None = None) -> EvalContext:
    """An evaluation context for `today` (default: the current business day)."""
    zone = tz or get_settings().tz
    return EvalContext(today=today or datetime.now(zone).date(), tz=zone)
