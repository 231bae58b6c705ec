"""Input types every API shares: database ids, and aware datetimes within the years Siyu can store and compute with."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator, AwareDatetime

MAX_DB_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite: both signed 64-bit
DbId = Annotated[int, Interval(ge=1, le=MAX_DB_ID)]

# Far from Python's and the databases' limits (years 1 and 9999), so that adding a day or a quota window
# to any accepted time cannot overflow.
MIN_YEAR, MAX_YEAR = 1900, 2999


def is_db_id(value: int) -> bool:
    """Whether `value` can be a row id (1 ≤ id ≤ 2^63 − 1)."""
    return 1 <= value <= MAX_DB_ID


def _in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"a time between the years {MIN_YEAR} and {MAX_YEAR} is required") from None
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"a time between the years {MIN_YEAR} and {MAX_YEAR} is required")
    return utc


# ISO 8601 with an offset (a naive time is refused), normalised to UTC.
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]
