"""How deep in a chain of re-checks a transaction's writes are, so that rules feeding each other settle.

A re-check job's writes (segment.entered/left, a rule's tag.added) are events too, and queue the next
round; a session carries its round in `session.info[DEPTH]`, and writes `MAX_DEPTH` rounds deep queue nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from config.database import session_scope

DEPTH = "segments_depth"
MAX_DEPTH = 3


def depth(session: Session) -> int:
    """The round this session's writes belong to (0: written by a request, a callback or a sync)."""
    return session.info.get(DEPTH, 0)


@contextmanager
def job_scope(round_: int = 1) -> Iterator[Session]:
    """A job's transaction (committed at the end) whose writes count as round `round_`."""
    with session_scope() as session:
        session.info[DEPTH] = round_
        yield session
