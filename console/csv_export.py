"""CSV downloads streamed from the database a page at a time (never built in memory), with the row count up front.

The answer carries `X-Total-Rows` (counted before the first page is read), so the console's script can show
"n / total rows" while the body streams; without the script the browser downloads it as any file.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote

from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from config.database import session_scope

PAGE = 1000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    # A cell a spreadsheet would run as a formula is quoted as text.
    return "'" + text if text.startswith(FORMULA_START) else text


def _line(row: Iterable) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(v) for v in row])
    return buffer.getvalue()


def small(header: list[str], rows: list[list]) -> Iterator[str]:
    """A CSV already at hand (a few dozen rows): the header and its rows."""
    yield "\ufeff" + _line(header)  # the BOM makes Excel read UTF-8 (Chinese names) correctly
    for row in rows:
        yield _line(row)


def paged(header: list[str], fetch: Callable[[Session, object, int], list[tuple]]) -> Iterator[str]:
    """The CSV text: the header, then `fetch(session, after, PAGE)` page after page, in a session of its own that
    closes when the download ends or is abandoned. Each fetched row ends with its keyset position (not written);
    `after` is the last page's last position (None at first)."""
    yield "\ufeff" + _line(header)
    with session_scope() as session:
        after = None
        while True:
            rows = fetch(session, after, PAGE)
            if rows:
                yield "".join(_line(row[:-1]) for row in rows)
            if len(rows) < PAGE:
                return
            after = rows[-1][-1]


def download(lines: Iterable[str], filename: str, total_rows: int) -> StreamingResponse:
    """A streamed CSV attachment; `total_rows` is what the progress shows against."""
    return StreamingResponse((line.encode("utf-8") for line in lines), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                                      "X-Total-Rows": str(total_rows), "Cache-Control": "no-store"})
