"""Keyset pagination cursors of the HTTP APIs: opaque to clients, the last id seen underneath."""
from __future__ import annotations

import base64

from fastapi import HTTPException


def encode_cursor(last_id: int) -> str:
    """The cursor that continues after `last_id`."""
    return base64.urlsafe_b64encode(str(last_id).encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    """The last id a cursor stands for (None for the first page); 422 for anything this API did not hand out."""
    if not cursor:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError:
        raise HTTPException(422, "cursor: not a cursor this API returned") from None


def page_of(rows: list, limit: int, last_id) -> tuple[list, str | None]:
    """The first `limit` of `rows` (fetched as limit + 1) and the cursor of the next page, if there is one."""
    page = rows[:limit]
    return page, encode_cursor(last_id(page[-1])) if len(rows) > limit else None
