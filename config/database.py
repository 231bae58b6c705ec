"""Database engine and sessions. The one place sessions are opened; callers own the transaction."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import Depends
from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from config.files import make_private, make_private_dir
from config.settings import get_settings

log = logging.getLogger(__name__)
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

class Base(DeclarativeBase):
    """Declarative base of every Siyu table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)

READ_ONLY = "siyu_read_only"  # execution option of `read_scope` sessions

def _sqlite_pragmas(busy_timeout: float, dbapi_conn, _record) -> None:
    # WAL lets the server read while a job writes; the busy timeout waits instead of failing.
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()

def _sqlite_begin(conn) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that later writes
    # can fail with SQLITE_BUSY without waiting, which would lose a webhook or a job.
    # A read-only session begins deferred: under WAL it reads a snapshot and never waits for a writer.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

def _sqlite_private(path: Path) -> Callable:
    def connect(_dbapi_conn, _record) -> None:
        # Before the pragmas: SQLite gives the -wal and -shm files it creates the database file's mode.
        for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            make_private(name)

    return connect

def make_engine(url: str, *, busy_timeout: float = 30.0, **kwargs: Any) -> Engine:
    """An engine for `url`, with SQLite tuned for one server process plus in-process jobs.

    `busy_timeout` (seconds, SQLite only) bounds how long a transaction waits for another's write lock.
    """
    parsed = make_url(url)
    # Error messages would otherwise carry the statement's parameters (phones, payloads, tokens) into
    # logs and stored errors.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": busy_timeout})
        in_memory = not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:")
        # A file database keeps its connections: opening one and setting its pragmas costs milliseconds, more
        # than a job's statements, and every session would pay it. Overflow is unbounded: never wait for one.
        if in_memory:
            kwargs.setdefault("poolclass", NullPool)
        elif kwargs.setdefault("poolclass", QueuePool) is QueuePool:
            kwargs.setdefault("pool_size", 4)
            kwargs.setdefault("max_overflow", -1)
        engine = create_engine(url, **kwargs)
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            path = Path(parsed.database)
            make_private_dir(path.parent)
            event.listen(engine, "connect", _sqlite_private(path))
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout))
        event.listen(engine, "begin", _sqlite_begin)
    else:
        ping_idle = kwargs.get("pool_pre_ping") is None  # unless the caller chose a policy of its own
        if "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", 10)
            kwargs.setdefault("max_overflow", 20)
        engine = create_engine(url, **kwargs)
        if ping_idle:
            _ping_when_idle(engine)
    _ENGINES.add(engine)
    return engine

PING_IDLE_AFTER = 5.0  # seconds a pooled PostgreSQL connection may rest before it is pinged at checkout

def _ping_when_idle(engine: Engine) -> None:
    # pool_pre_ping costs a round trip per checkout, a fifth of an acknowledgement in a burst. A connection back
    # in the pool moments ago is as alive as the server: only one that rested (the server may have restarted
    # meanwhile) is pinged, and a dead one is replaced before anybody uses it.
    @event.listens_for(engine, "checkin")
    def _rested(_dbapi_conn, record) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        if time.monotonic() - record.info.get("checked_in", float("-inf")) < PING_IDLE_AFTER:
            return
        try:
            dbapi_conn.execute("SELECT 1")
        except Exception as exc:  # the server closed it: the pool opens a new one
            raise DisconnectionError(str(exc)[:200]) from exc
        dbapi_conn.rollback()

def _dispose_pools_in_child() -> None:
    # A forked RQ work-horse must not reuse the parent's pooled connections.
    for engine in list(_ENGINES):
        engine.dispose(close=False)

os.register_at_fork(after_in_child=_dispose_pools_in_child)

@functools.lru_cache(maxsize=8)
def engine_for(url: str, busy_timeout: float = 30.0) -> Engine:
    """The process-wide engine of `url` (SQLite: waiting at most `busy_timeout` seconds for the write lock)."""
    return make_engine(url, busy_timeout=busy_timeout)

def get_engine() -> Engine:
    """The engine of the configured database."""
    return engine_for(get_settings().database_url)

@functools.lru_cache(maxsize=8)
def _factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)

@contextlib.contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back when it raises."""
    session = _factory(engine or get_engine())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

@functools.lru_cache(maxsize=8)
def _read_only(engine: Engine) -> Engine:
    return engine.execution_options(**{READ_ONLY: True})

@contextlib.contextmanager
def read_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session for reading only: on SQLite it never takes (or waits for) the write lock; rolled back at the end.

    The objects it loaded stay readable afterwards (detached, not expired).
    """
    session = _factory(_read_only(engine or get_engine()))()
    try:
        yield session
    finally:
        session.close()  # ends the transaction without expiring what was read

def get_session() -> Iterator[Session]:
    """FastAPI dependency: the request owns one transaction, committed after the handler returns."""
    with session_scope() as session:
        yield session

# scope="function": the commit happens before the answer is sent, so a commit that fails is the client's error
# answer, never a 2xx for a change that was not stored (the default scope commits after the response).
request_session = Depends(get_session, scope="function")  # use as `session: Session = request_session`

def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction commits; drop it on rollback."""
    pending = session.info.setdefault("after_commit", [])
    pending.append(callback)

def on_transaction_end(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` when the session's outermost transaction ends, committed or not (clears per-transaction state)."""
    session.info.setdefault("on_transaction_end", []).append(callback)

def _end(session: Session) -> None:
    for callback in session.info.pop("on_transaction_end", []):
        callback()

@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    # SQLAlchemy 2.1 fires after_commit when a SAVEPOINT is released too: wait for the real commit.
    # (A callback queued inside a savepoint that is later rolled back still runs: jobs take ids and
    # must cope with rows that are not there.)
    if session.in_nested_transaction():
        return
    _end(session)
    callbacks = session.info.pop("after_commit", [])
    if session.info.get("defer_after_commit"):
        session.info.setdefault("deferred", []).extend(callbacks)
        return
    _run(callbacks)

def _run(callbacks: list[Callable[[], None]]) -> None:
    for cb in callbacks:
        try:
            cb()
        except Exception:  # a failed enqueue is recovered by the sweepers, never by losing the commit
            log.exception("after-commit callback %r failed", cb)

def defer_after_commit(session: Session) -> None:
    """Keep the session's after-commit callbacks until `run_deferred(session)` (to run them outside a lock)."""
    session.info["defer_after_commit"] = True

def run_deferred(session: Session) -> None:
    """Run the after-commit callbacks that `defer_after_commit` kept (those of committed transactions only)."""
    _run(session.info.pop("deferred", []))

@event.listens_for(Session, "after_soft_rollback")
def _forget_a_savepoints_work(session: Session, previous_transaction) -> None:
    # PostgreSQL releases the advisory locks a rolled-back savepoint took, and what `per_transaction` kept may be a
    # row that savepoint created: both are forgotten (taken or looked up again, at the cost of a statement).
    if previous_transaction.nested:
        session.info.pop(TRANSACTION_CACHE, None)
        session.info.pop(ADVISORY_LOCKS, None)


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint rolled back; the transaction goes on
        return
    _end(session)
    session.info.pop("after_commit", None)

def adopt(session: Session, obj) -> None:
    """Add `obj`, whose row a Core statement of ours has just written (its id and every column set), to the session
    without inserting it again: the unit of work costs more than the insert."""
    make_transient_to_detached(obj)
    session.add(obj)


def insert_for(session: Session):
    """The `insert` construct of the session's database, the one that has `on_conflict_do_*` (SQLite, PostgreSQL)."""
    return insert_of(session.get_bind().dialect.name)


def insert_of(dialect: str):
    """`insert_for` by the database's dialect name."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - Siyu supports these two
        raise RuntimeError(f"upsert: unsupported database {dialect}")
    return insert

def upsert(session: Session, table, values: dict | list[dict], index_elements: list[str], set_: dict | None = None,
           returning=None):
    """INSERT … ON CONFLICT (index_elements) DO UPDATE SET set_ (or DO NOTHING), on SQLite and PostgreSQL.

    `values` is one row or several (inserted by one statement, in their order). With `returning` (a column), the
    value of the (first) row written, or None when DO NOTHING skipped it. One row's values are bound as parameters
    of a statement built once (DO NOTHING) or of `set_`'s: building `.values(...)` anew costs several times the
    round trip.
    """
    dialect, rows = session.get_bind().dialect.name, isinstance(values, list)
    if rows or set_:
        stmt = insert_of(dialect)(table)
        stmt = _conflict(stmt.values(values) if rows else stmt, index_elements, set_)
        stmt = stmt if returning is None else stmt.returning(returning)
    else:
        stmt = _do_nothing(dialect, table, tuple(index_elements), returning)
    result = session.execute(stmt, None if rows else values)
    return None if returning is None else result.scalar()


def _conflict(stmt, index_elements, set_: dict | None):
    if set_:
        return stmt.on_conflict_do_update(index_elements=index_elements, set_=set_)
    return stmt.on_conflict_do_nothing(index_elements=index_elements)


@functools.lru_cache(maxsize=64)
def _do_nothing(dialect: str, table, index_elements: tuple[str, ...], returning):
    stmt = _conflict(insert_of(dialect)(table), list(index_elements), None)
    return stmt if returning is None else stmt.returning(returning)


def prepared(build: Callable[[str], Any]) -> Callable[[Session], Any]:
    """`build(dialect)` (a statement whose values are bound per call) built once per database kind: call the
    result with a session, or `.of(dialect)` without one.

    SQLAlchemy caches the compiled SQL but not the construct: a multi-row upsert with CASE expressions costs
    0.9 ms of Python to build each time, against 0.15 ms to execute one built once.
    """
    built = functools.lru_cache(maxsize=2)(build)

    def for_session(session: Session):
        return built(session.get_bind().dialect.name)

    for_session.of = built
    return for_session


ADVISORY_LOCKS = "advisory_locks"  # session.info: the keys this transaction holds a lock on

def advisory_lock(session: Session, key: str) -> None:
    """Serialise the transactions that name `key` until this one ends (PostgreSQL; SQLite has one writer anyway).

    Taken once per transaction: a second call with the same key costs nothing.
    """
    advisory_locks(session, [key])


def advisory_locks(session: Session, keys) -> None:
    """`advisory_lock` for many keys at once: one statement, taking them in sorted order (so two transactions
    naming overlapping keys cannot deadlock on them). Keys this transaction holds already are left out."""
    if session.get_bind().dialect.name != "postgresql":
        return  # the transaction's BEGIN IMMEDIATE already serialises every writer
    held = session.info.get(ADVISORY_LOCKS)
    if held is None:
        held = session.info[ADVISORY_LOCKS] = set()
        on_transaction_end(session, lambda: session.info.pop(ADVISORY_LOCKS, None))
    new = sorted(set(keys) - held)
    if len(new) == 1:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": new[0]})
    elif new:  # the ordered subquery feeds the lock calls one row at a time, in the order of the locks themselves
        session.execute(text("SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT hashtext(k) AS h "
                             "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS s"), {"keys": new})
    held.update(new)

TRANSACTION_CACHE = "transaction_cache"  # session.info: look-ups kept until the transaction ends

def per_transaction(session: Session, key, compute: Callable[[], Any]):
    """`compute()`, run once per transaction of `session`: the look-ups every event of one batch repeats."""
    cache = session.info.get(TRANSACTION_CACHE)
    if cache is None:
        cache = session.info[TRANSACTION_CACHE] = {}
        on_transaction_end(session, lambda: session.info.pop(TRANSACTION_CACHE, None))
    if key not in cache:
        cache[key] = compute()
    return cache[key]

def forget(session: Session, key) -> None:
    """Drop what `per_transaction` keeps under `key` (the transaction has just changed it)."""
    session.info.get(TRANSACTION_CACHE, {}).pop(key, None)
