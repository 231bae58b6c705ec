"""Commutative upserts held back to the end of a batch: what a batch's events bump goes out in one round trip.

A batch of inbox events (webhooks.inbox) bumps a few counters per event: the derived traits, the daily event counts.
Each is an `INSERT … ON CONFLICT DO UPDATE` that adds to what is stored or keeps the later (or earlier) time, so the
rows may be written in any order and any grouping with the same result. Inside `writing_behind(session)`,
`write_behind(session, statement, rows, key, combine)` keeps the rows instead of executing them; they are sent, rows
of one conflict key combined into one, by one executemany a table (psycopg pipelines it: one round trip; tables in the
order they were first bumped, rows in the order of their conflict keys: the order every writer at once locks them in)
when the block ends, and before anything the session runs that could see them:

- a statement that names one of their tables (a text statement: that mentions its name), checked in `do_orm_execute`;
- a flush with objects of their tables pending, and a commit;
- `flush_behind(session)`, which code reading through the raw DBAPI connection calls first.

A savepoint that is rolled back takes back the rows kept inside it, and the rows it had sent are sent again. Outside
the block, `write_behind` executes at once.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import TextClause, event
from sqlalchemy.orm import Session
from sqlalchemy.sql.util import find_tables

BEHIND = "write_behind"  # session.info: the open block's rows
Combine = Callable[[dict, dict], dict]  # two rows of one conflict key -> the one row with the effect of both


@dataclass
class _Rows:
    log: list[tuple[object, tuple, dict]] = field(default_factory=list)  # (statement, conflict key, row), in order
    sent: int = 0  # log[:sent] has been executed
    tables: set[str] = field(default_factory=set)  # the tables of the statements in log[sent:]
    marks: dict[object, tuple[int, int]] = field(default_factory=dict)  # open savepoint -> (len(log), sent)
    combine: dict[object, Combine] = field(default_factory=dict)  # statement -> how two of its rows make one


def write_behind(session: Session, statement, rows: list[dict], key: tuple[str, ...], combine: Combine) -> None:
    """Execute `statement` (a commutative upsert) with `rows`, now or, inside `writing_behind`, before it ends.

    `key`: the columns of the conflict target, by which the rows are sorted; `combine(a, b)`: the one row that has the
    effect of upserting `a` then `b` of one key (one execution instead of two)."""
    held = session.info.get(BEHIND)
    if held is None:
        session.execute(statement, rows[0] if len(rows) == 1 else rows)
        return
    for row in rows:
        held.log.append((statement, tuple(row[k] for k in key), row))
    held.tables.add(statement.table.name)
    held.combine[statement] = combine


@contextlib.contextmanager
def writing_behind(session: Session, enabled: bool = True) -> Iterator[None]:
    """Hold `write_behind`'s rows until the block ends (then sent); dropped when it raises. Not nested."""
    if not enabled:
        yield
        return
    session.info[BEHIND] = _Rows()
    try:
        yield
        flush_behind(session)
    finally:
        session.info.pop(BEHIND, None)


def flush_behind(session: Session) -> None:
    """Send the rows held so far (no-op outside `writing_behind`)."""
    held = session.info.get(BEHIND)
    if held is None or held.sent == len(held.log):
        return
    pending, held.sent, held.tables = held.log[held.sent:], len(held.log), set()
    by_statement: dict[object, dict[tuple, dict]] = {}
    for statement, key, row in pending:
        rows = by_statement.setdefault(statement, {})
        rows[key] = held.combine[statement](rows[key], row) if key in rows else row
    for statement, rows in by_statement.items():  # tables in the order the events bumped them, as writers at once do
        # one executemany (psycopg pipelines it: one round trip); a multi-row VALUES would be compiled anew each time
        session.execute(statement, [rows[key] for key in sorted(rows)])


@functools.lru_cache(maxsize=1024)
def _tables_of(statement) -> frozenset[str]:
    return frozenset(t.name for t in find_tables(statement, include_crud=True, include_joins=True,
                                                 include_selects=True) if hasattr(t, "name"))


def _touches(statement, tables: set[str]) -> bool:
    if isinstance(statement, TextClause):
        return any(name in statement.text for name in tables)
    return not tables.isdisjoint(_tables_of(statement))


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state) -> None:
    held = state.session.info.get(BEHIND)
    if held is not None and held.tables and _touches(state.statement, held.tables):
        flush_behind(state.session)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context, _instances) -> None:
    held = session.info.get(BEHIND)
    if held is None or not held.tables:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(type(obj), "__table__", None)
        if table is not None and table.name in held.tables:
            flush_behind(session)
            return


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # SQLAlchemy says so of a savepoint's release too
        flush_behind(session)


@event.listens_for(Session, "after_transaction_create")
def _savepoint_started(session: Session, transaction) -> None:
    held = session.info.get(BEHIND)
    if held is not None and transaction.nested:
        held.marks[transaction] = (len(held.log), held.sent)


@event.listens_for(Session, "after_commit")
def _savepoint_released(session: Session) -> None:
    held = session.info.get(BEHIND)
    if held is not None and (savepoint := session.get_nested_transaction()) is not None:
        held.marks.pop(savepoint, None)  # fired while the released savepoint is still the session's


@event.listens_for(Session, "after_transaction_end")
def _savepoint_ended(session: Session, transaction) -> None:
    # A savepoint that ends unreleased was rolled back, by its own rollback or by a failed flush inside it (which
    # rolls it back and leaves it only to be closed).
    held = session.info.get(BEHIND)
    mark = held.marks.pop(transaction, None) if held is not None else None
    if mark is None:
        return
    kept, sent = mark
    del held.log[kept:]  # kept inside the savepoint: gone with it
    held.sent = min(held.sent, sent)  # sent inside it: rolled back, to be sent again
    held.tables = {statement.table.name for statement, _, _ in held.log[held.sent:]}
