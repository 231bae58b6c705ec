"""Why an evaluation failed, in words safe to log and store: never the SQL statement, never its parameters.

A database error's text carries the whole statement and its parameters (10 MB of SQL for one runaway
definition, and a trait value may be a phone number), so it never leaves this module as it came. A failure
that retrying cannot fix (a stored definition that is no longer valid, a statement past the database's
limits) is `Unevaluable`: recorded once on the segment, left out of scheduled refreshes until the segment or
one it references is redefined, and not retried. Any other database error is `EvaluationFailed`, which
the queue retries.
"""
from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import or_, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from segments.exceptions import EvaluationFailed, InvalidDefinition, Unevaluable
from segments.models import Segment

log = logging.getLogger(__name__)

# SQLite reports its limits as plain SQLITE_ERRORs; these are the messages (sqlite3.c, lower-cased).
SQLITE_LIMITS = (
    "too many sql variables", "expression tree is too large", "too many terms in compound select",
    "parser stack overflow", "string or blob too big", "too many columns", "tables in a join",
    "too many from clause terms", "too many references to",
)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|\([^()]*\)=\([^()]*\)")  # values a driver may quote in its first line


def describe(exc: BaseException) -> str:
    """The driver error's class, code and first line, quoted values masked: no SQL, no parameters."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    lines = str(orig).strip().splitlines()
    first = _QUOTED.sub("…", lines[0] if lines else "")[:200]
    return f"{type(orig).__name__}{f' [{code}]' if code else ''}: {first}"


DRIVER_ERRORS = (StatementError, psycopg.Error, sqlite3.Error)  # the set evaluator streams from psycopg itself


def past_limits(exc: BaseException) -> bool:
    """Whether the database refused the statement for its size or depth (the same statement always will)."""
    orig = getattr(exc, "orig", None) or exc
    if str(getattr(orig, "sqlstate", None) or "").startswith("54"):  # PostgreSQL: program_limit_exceeded
        return True
    return isinstance(orig, sqlite3.Error) and any(m in str(orig).lower() for m in SQLITE_LIMITS)


@contextmanager
def translated(segment_id: int | None = None) -> Iterator[None]:
    """Turn database errors (and a stored definition gone invalid) into errors that carry no SQL."""
    about = f"segment {segment_id}" if segment_id is not None else "segments"
    try:
        yield
    except InvalidDefinition as exc:
        raise Unevaluable(segment_id, f"its definition is invalid: {exc}") from None
    except RecursionError:
        raise Unevaluable(segment_id, "its definition nests too deeply to evaluate") from None
    except DRIVER_ERRORS as exc:
        what = describe(exc)
        if past_limits(exc):
            raise Unevaluable(segment_id, f"the database refused the statement as too large ({what})") from None
        raise EvaluationFailed(f"{about}: {what}") from None


def record(session: Session, segment_id: int, error: str | None) -> bool:
    """Store (or with None clear) why a segment cannot be evaluated; True when that changed anything."""
    changed = or_(Segment.refresh_error.is_(None), Segment.refresh_error != error) if error is not None \
        else Segment.refresh_error.is_not(None)
    # updated_at is kept: it versions the definition (the per-event compile cache), which did not change.
    result = session.execute(update(Segment).where(Segment.id == segment_id, changed)
                             .values(refresh_error=error, updated_at=Segment.updated_at))
    if result.rowcount and error is not None:
        log.warning("segment %s: cannot be evaluated, recorded and not retried: %s", segment_id, error)
    return bool(result.rowcount)
