"""Cursors of the console's pages ordered by a time and then an id (a timeline, a day of bookings)."""
from __future__ import annotations

import base64
from datetime import datetime

from config.errors import InvalidInput
from config.pagination import decode_cursor


def time_cursor(at: datetime, row_id: int) -> str:
    """The cursor that continues after the row at (`at`, `row_id`)."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_time_cursor(cursor: str | None) -> tuple[datetime | None, int | None]:
    """(time, id) of a cursor this console handed out, (None, None) for the first page; InvalidInput otherwise."""
    if not cursor:
        return None, None
    try:
        at, _, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        parsed = datetime.fromisoformat(at)
        decode_cursor(base64.urlsafe_b64encode(last_id.encode()).decode())  # the same bounds as any row id
        if parsed.tzinfo is None:
            raise ValueError
        return parsed, int(last_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor: not a cursor this page handed out") from None
