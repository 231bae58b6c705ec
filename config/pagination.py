"""Keyset pagination cursors of the HTTP APIs: opaque to clients, the last id seen underneath."""
from __future__ import annotations

import base64

from config.errors import InvalidInput
from config.inputs import is_db_id


def encode_cursor(last_id: int) -> str:
    """The cursor that continues after `last_id`."""
    return base64.urlsafe_b64encode(str(last_id).encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    """The last id a cursor stands for (None for the first page); 422 for anything this API did not hand out."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        last_id = int(text)
    except ValueError:
        last_id = None
    # Only the canonical digits of a row id: no sign, padding or id past 64 bits reaches a query.
    if last_id is None or text != str(last_id) or not is_db_id(last_id):
        raise InvalidInput("cursor: not a cursor this API returned")
    return last_id


def page_of(rows: list, limit: int, last_id) -> tuple[list, str | None]:
    """The first `limit` of `rows` (fetched as limit + 1) and the cursor of the next page, if there is one."""
    page = rows[:limit]
    return page, encode_cursor(last_id(page[-1])) if len(rows) > limit else None
