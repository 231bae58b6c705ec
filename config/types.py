"""Column types shared by every package: aware UTC datetimes, JSON that is JSONB on PostgreSQL, redacted error text."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from config.redact import redact

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (which keeps no offset) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Siyu stores aware datetimes only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class ErrorText(TypeDecorator):
    """Text of a stored error (a traceback, an API answer): redacted on the way in, whoever writes it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect):
        return redact(value)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(timezone.utc)


# Tencent's timestamps are Unix seconds; anything outside these years is corrupt, not a time.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


def from_unix(value) -> datetime | None:
    """Unix seconds (int or digit string) as an aware UTC datetime; None when absent or not a plausible time."""
    try:
        at = datetime.fromtimestamp(int(value), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return at if EARLIEST <= at < LATEST else None
