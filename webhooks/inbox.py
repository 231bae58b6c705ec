"""The inbox: every decrypted callback stored once under its content key, then its id enqueued and processed.

In embedded mode (SQLite) the inbox has a file of its own, `<var_dir>/inbox.db`: SQLite locks a whole
database for one writer, and an acknowledgement must not wait behind a job holding the main database's
write lock. Only short transactions touch that file, and they wait at most `INBOX_BUSY_TIMEOUT` for
each other. On PostgreSQL the inbox is in the main database. Every reader and writer of the intake's
tables goes through `inbox_engine()` / `inbox_scope()`.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi import Depends
from sqlalchemy import Engine, and_, func, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from bot.errors import PermanentAPIError
from config.database import (advisory_locks, defer_after_commit, engine_for, get_engine, insert_of, make_engine,
                             prepared, read_scope, run_deferred, session_scope, upsert)
from config.errors import Unavailable
from config.queue import JOB_TIMEOUT, RETRY_INTERVALS, enqueue, withdraw
from config.settings import get_settings
from config.types import utcnow
from config.write_behind import flush_behind, writing_behind
from membership.exceptions import InvalidInput
from membership.service import contact_lock_key
from webhooks.dispatch import Event, handler_for
from webhooks.exceptions import PermanentEventError
from webhooks.metrics import PROCESSED, RECEIVED, UNHANDLED
from webhooks.models import INBOX_TABLES, InboxApplied, InboxEvent, InboxStatus
from webhooks.read_ahead import read_ahead

log = logging.getLogger(__name__)

INBOX_BUSY_TIMEOUT = 1.0  # seconds an inbox transaction waits for another's lock (the ack path's bound)
_WRITERS = threading.RLock()  # this process's writers of the SQLite inbox, one at a time


_ENGINE_LOCK = threading.Lock()  # the first requests of a burst must not each open (and adopt into) the inbox
_SQLITE_APPLYING = threading.Lock()  # this process's jobs applying events to a SQLite database, one at a time


def _new_writers_lock() -> None:
    global _WRITERS, _ENGINE_LOCK, _SQLITE_APPLYING, _current
    _current = None  # a forked child opens its own connections
    _WRITERS = threading.RLock()  # a forked child must not inherit a lock some parent thread held
    _ENGINE_LOCK = threading.Lock()
    _SQLITE_APPLYING = threading.Lock()


os.register_at_fork(after_in_child=_new_writers_lock)


class InboxBusy(Unavailable):
    """The inbox stayed locked by other writers for longer than `INBOX_BUSY_TIMEOUT`."""


_current: tuple[object, Engine] | None = None  # (settings, its inbox engine): every acknowledgement asks twice


def inbox_engine() -> Engine:
    """The engine of the intake's tables: `<var_dir>/inbox.db` when the main database is SQLite, else the main one."""
    global _current
    settings = get_settings()
    current = _current
    if current is not None and current[0] is settings:
        return current[1]
    with _ENGINE_LOCK:
        engine = _inbox_engine(settings.database_url, str(settings.var_dir.resolve()))
        _current = (settings, engine)
        return engine


def reopen_inbox() -> None:
    """Forget the inbox engines, so the next use opens (and, if need be, adopts into) the inbox file again."""
    global _current
    with _ENGINE_LOCK:
        _current = None
        _inbox_engine.cache_clear()


@functools.lru_cache(maxsize=8)
def _inbox_engine(database_url: str, var_dir: str) -> Engine:
    if make_url(database_url).get_backend_name() != "sqlite":
        return engine_for(database_url)
    # Pooled connections: opening one (and setting its pragmas) costs ~7 ms, ten times the insert itself,
    # and every acknowledgement would pay it inside the writers' lock. Overflow is unbounded: never wait for one.
    engine = make_engine(f"sqlite:///{var_dir}/inbox.db", busy_timeout=INBOX_BUSY_TIMEOUT, poolclass=QueuePool,
                         pool_size=4, max_overflow=-1)
    for table in INBOX_TABLES:
        table.create(engine, checkfirst=True)
    main = make_url(database_url).database
    if main and main != ":memory:" and Path(main).exists():
        _adopt(engine, str(Path(main).resolve()))
    return engine


def _adopt(engine: Engine, main_path: str) -> None:
    # An install from before the split kept the intake's tables in the main database: copy their rows over
    # once, ids and all (timeline keys and outbound sends name inbox ids), so no waiting event is lost.
    # One statement each, in autocommit: it writes the inbox file and only reads the main one (no lock there).
    raw = engine.raw_connection()
    raw.detach()  # out of the pool: closing it really closes it, and the ATTACH goes with it
    try:
        cur = raw.cursor()
        cur.execute("ATTACH DATABASE ? AS main_db", (main_path,))
        for table in INBOX_TABLES:
            if not cur.execute("SELECT 1 FROM main_db.sqlite_master WHERE type = 'table' AND name = ?",
                               (table.name,)).fetchone():
                continue
            cols = ", ".join(f'"{c.name}"' for c in table.columns)
            cur.execute(f'INSERT INTO main."{table.name}" ({cols}) SELECT {cols} FROM main_db."{table.name}" '
                        f'WHERE NOT EXISTS (SELECT 1 FROM main."{table.name}")')
            if cur.rowcount > 0:
                log.warning("inbox: copied %d rows of %s from the main database into %s", cur.rowcount,
                            table.name, engine.url.database)
    finally:
        raw.close()


@contextlib.contextmanager
def inbox_scope() -> Iterator[Session]:
    """A session on the inbox in one short transaction: committed when the block ends, rolled back when it raises."""
    engine = inbox_engine()
    if engine.dialect.name != "sqlite":
        with session_scope(engine) as session:
            yield session
        return
    # SQLite's busy handler polls with growing sleeps, so in a burst the oldest waiter keeps losing to newer
    # ones until its timeout runs out; this process's writers queue on a lock instead, and SQLite's own wait
    # is left to writers in other processes. What runs after the commit (an enqueue, maybe to a Redis that
    # hangs) runs once the lock is released, so it never holds up the next acknowledgement.
    if not _WRITERS.acquire(timeout=INBOX_BUSY_TIMEOUT):
        raise InboxBusy(f"inbox writers ahead of this one for more than {INBOX_BUSY_TIMEOUT:.0f}s")
    try:
        with session_scope(engine) as session:
            defer_after_commit(session)
            yield session
    finally:
        _WRITERS.release()
    run_deferred(session)


def get_inbox_session() -> Iterator[Session]:
    """FastAPI dependency: a session on the inbox, committed after the handler returns."""
    with inbox_scope() as session:
        yield session


inbox_request_session = Depends(get_inbox_session, scope="function")  # committed before the answer is sent


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _width(column) -> int:
    return InboxEvent.__table__.c[column].type.length


def storable_text(text: str) -> str:
    """`text` as both databases take it: NUL removed (PostgreSQL refuses it), a lone surrogate replaced."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\ud800" escapes decode to lone surrogates no driver can encode
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def storable(value):
    """`value` (a parsed callback) with every string in it, keys included, made storable."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _bounded(value: str, column: str) -> str:
    # The ellipsis makes a cut kind differ from every handled one (all are ASCII): it is kept as unhandled.
    width = _width(column)
    return value if len(value) <= width else value[:width - 1] + "…"


def event_kind(data: dict) -> tuple[str, str, str]:
    """(MsgType, Event, ChangeType) of a parsed callback, lower-cased (the OA mixes `SCAN` and `subscribe`)."""
    msg_type = _text(data.get("MsgType") or data.get("msgtype"))
    event = _text(data.get("Event") or data.get("event"))
    change = _text(data.get("ChangeType") or data.get("changetype"))
    return msg_type.lower(), event.lower(), change.lower()


def content_key(source: str, plaintext: str, data: dict) -> str:
    """The dedupe key of a callback: MsgId for messages, a SHA-256 of the whole plaintext for events.

    FromUserName + CreateTime is not a key: change_external_* events all come from `sys`, and two
    customers added in one second would collide.
    """
    msg_id = _text(str(data.get("MsgId") or data.get("MsgID") or data.get("msgid") or ""))
    if msg_id:
        prefix = f"{source}:msg:"
        if len(prefix) + len(msg_id) <= _width("content_key"):
            return prefix + msg_id
        return f"{prefix}sha256:{hashlib.sha256(msg_id.encode()).hexdigest()}"  # a MsgId too long for the column
    return f"{source}:sha256:{hashlib.sha256(plaintext.encode()).hexdigest()}"


@dataclass
class Stored:
    inbox_id: int
    created: bool


def inbox_row(source: str, plaintext: str, data: dict) -> dict:
    """The inbox row of a callback; what is stored always fits the columns, so no content can make the insert fail."""
    plaintext, data = storable_text(plaintext), storable(data)
    msg_type, event, change = event_kind(data)
    now = utcnow()
    return {"source": source, "content_key": content_key(source, plaintext, data),
            "msg_type": _bounded(msg_type, "msg_type"), "event": _bounded(event, "event"),
            "change_type": _bounded(change, "change_type"), "payload": plaintext, "data": data,
            "status": InboxStatus.received.value, "attempts": 0, "received_at": now, "due_at": now}


def stored_as(source: str, key: str, inbox_id: int | None, found: int | None = None) -> Stored:
    """The answer (and its count) for a callback: stored as `inbox_id`, else a duplicate of row `found`."""
    if inbox_id is not None:
        RECEIVED.labels(source, "stored").inc()
        return Stored(inbox_id, True)
    RECEIVED.labels(source, "duplicate").inc()
    log.info("inbox %s: duplicate delivery of #%s, ignored", key, found)
    return Stored(found, False)


def store(session: Session, source: str, plaintext: str, data: dict, extra_jobs=()) -> Stored:
    """Insert the callback (or find its earlier copy); when new, enqueue it once `session` (on the inbox) commits."""
    row = inbox_row(source, plaintext, data)
    key = row["content_key"]
    inbox_id = session.execute(_insert_returning_id(session), row).scalar()
    stored = stored_as(source, key, inbox_id, None if inbox_id is not None else session.scalar(_id_of(key)))
    if stored.created:
        for job, options in intake_jobs(inbox_id, key, extra_jobs):
            enqueue(job, inbox_id, session=session, **options)  # each after-commit callback fails on its own
    return stored


def intake_jobs(inbox_id: int, key: str, extra_jobs) -> list[tuple]:
    """(function, enqueue options) of what a stored event runs: its own named job, then the extra ones."""
    return [(process_inbox, {"name": job_name(inbox_id, key)}), *((job, {"queue": q}) for job, q in extra_jobs)]


def job_name(inbox_id: int, key: str) -> str:
    """The name of the job the intake enqueued for an event: a batch that applied the event withdraws it.

    With the content key's digest, an id that comes again (a database recreated under a Redis that kept its jobs)
    names another job, never the ended one's leftovers."""
    return f"inbox-{inbox_id}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _id_of(key: str):
    return select(InboxEvent.id).where(InboxEvent.content_key == key)


@prepared
def _insert_returning_id(dialect: str):
    # Built once, its values bound per call: building `.values(...)` anew costs more than the SQLite insert.
    return (insert_of(dialect)(InboxEvent.__table__).on_conflict_do_nothing(index_elements=["content_key"])
            .returning(InboxEvent.id))


def storing_at_once() -> bool:
    """True when webhooks.group_store takes callbacks: on PostgreSQL (SQLite's writers queue in `inbox_scope`)."""
    return inbox_engine().dialect.name == "postgresql"


def cause_of(inbox_id: int) -> str:
    """What the send ledger (bot.sends) records as the cause of a message an inbox event made Siyu send."""
    return f"inbox:{inbox_id}"


def requeue(session: Session, inbox_id: int) -> None:
    """Put an event back to `received` and enqueue it (replay of a failed or unhandled event)."""
    session.execute(update(InboxEvent).where(InboxEvent.id == inbox_id).values(
        status=InboxStatus.received.value, attempts=0, error=None, due_at=utcnow(), processed_at=None))
    enqueue(process_inbox, inbox_id, session=session)


def stuck(session: Session, older_than: timedelta, limit: int = 500) -> list[int]:
    """Ids of events still `received` well after they were due (their job was lost)."""
    cutoff = utcnow() - older_than
    q = (select(InboxEvent.id)
         .where(InboxEvent.status == InboxStatus.received.value, InboxEvent.due_at < cutoff)
         .order_by(InboxEvent.id).limit(limit))
    return list(session.scalars(q))


# -- processing: one job per stored event, applying other waiting events with it ------------------------------
MAX_ATTEMPTS = 1 + len(RETRY_INTERVALS)  # the queue's retries, counted on the row
# Failures that the same event meets on every attempt: recorded once, never retried (a replay may try again).
# Anything else (Tencent's transport, rate and busy errors, a locked database) goes back to the queue.
PERMANENT_ERRORS = (
    PermanentEventError,  # a required field missing, a corrupt CreateTime
    InvalidInput,  # the profile store refused a value from the event (an empty openid, a malformed identity)
    PermanentAPIError,  # Tencent refused the call for a reason retrying will not fix
    DataError,  # the database refused a value (too long, a NUL byte)
)
# Events one job applies in one transaction: its own, then others already waiting. Each one taken along saves a
# commit, a segment re-check job and the look-ups its listeners share. On SQLite the transaction holds the one
# write lock every other writer (the welcome message's job, the console, the mini-program) waits for, so another
# event is started only while it has been held for less than SQLITE_BATCH_SECONDS (the lock is then held for that
# and one event more): with Tencent's real latency (a re-read each) that is the own event alone, with a fast
# answer a handful.
BATCH = 40
SQLITE_BATCH_SECONDS = 0.05


@dataclass
class _Taken:
    row: InboxEvent
    event: Event
    handler: object


def process_inbox(inbox_id: int) -> str:
    """Apply one stored event, with other waiting events in the same transaction; the event's status after.

    The event itself is handled as if alone: a permanent failure is recorded once, any other error is recorded
    and raised for the queue's retry. An event taken along that fails permanently is recorded once too; one that
    fails otherwise is left untouched for its own job (every stored event has one), which retries as usual.
    """
    with read_scope(inbox_engine()) as s:
        row = s.get(InboxEvent, inbox_id)
    if row is None or row.status != InboxStatus.received.value:
        return row.status if row else "missing"
    handler = handler_for(row.source, row.msg_type, row.event, row.change_type)
    if handler is None:
        kind = f"{row.msg_type}/{row.event}/{row.change_type}"
        if _settle([inbox_id], InboxStatus.unhandled):
            UNHANDLED.labels(row.source, kind).inc()
            log.info("inbox #%s: no handler for %s, kept", inbox_id, kind)
        return InboxStatus.unhandled.value
    try:
        own = _taken(row, handler)
    except PERMANENT_ERRORS as exc:
        return _failed_for_good(inbox_id, exc, traceback.format_exc())
    status = _apply(own, wait=False)
    # None: another job has the event in its batch; this one has applied a batch of others meanwhile
    return status if status is not None else _apply(own)


def _taken(row: InboxEvent, handler) -> _Taken:
    event = Event(row.id, row.source, dict(row.data or {}))
    event.at  # noqa: B018 - a corrupt CreateTime fails here, before the handler calls anyone
    return _Taken(row, event, handler)


def _apply(own: _Taken, wait: bool = True) -> str | None:
    """Apply `own` and the others taken along in one transaction; None when `own` was locked (and `wait` False)."""
    if inbox_engine() is get_engine():  # PostgreSQL: the inbox is in the main database
        return _apply_in(own, wait, shares=True)
    # SQLite has one writer: a second job applying at once in this process would only poll its busy handler,
    # taking the interpreter from the acknowledgements (0.30x bare FastAPI with two job threads, 0.45x with one).
    with _SQLITE_APPLYING:
        return _apply_in(own, wait, shares=False)


class _Redo(Exception):
    """An event taken along failed in a batch applied without savepoints: the batch is to be applied with them."""

    def __init__(self, inbox_id: int, error: Exception):
        super().__init__(f"inbox #{inbox_id}: {type(error).__name__}")
        self.inbox_id = inbox_id


def _apply_in(own: _Taken, wait: bool, shares: bool) -> str | None:
    if shares:
        # A savepoint an event is two round trips and a fifth of SQLAlchemy's work for it: a batch is first applied
        # without them, and only when an event taken along fails, rolled back whole and applied again with them.
        try:
            return _apply_batch(own, wait, shares, careful=False)
        except _Redo as redo:
            log.info("%s along with #%s: the batch is applied again, one savepoint an event", redo, own.row.id)
    return _apply_batch(own, wait, shares, careful=True)  # SQLite's savepoints cost no round trip


def _apply_batch(own: _Taken, wait: bool, shares: bool, careful: bool) -> str | None:
    inbox_id, done, failed = own.row.id, [], []
    try:
        with session_scope() as session:
            # the job before may have settled it, or taken it along: the row's status, locked when it shares
            status = _lock_row(session, inbox_id, wait) if shares else _status_apart(inbox_id)
            if status is not None and status != InboxStatus.received.value:
                return status  # another job settled it meanwhile
            others = _others(session if shares else None, inbox_id) if batchable(own.event) else []
            batch = ([own] if status is not None else []) + others
            # in one order in every job, so two batches cannot deadlock on them
            advisory_locks(session, {k for k in (subject_of(t.event) for t in batch) if k})
            until = math.inf if shares else time.monotonic() + SQLITE_BATCH_SECONDS
            # without savepoints nothing of the batch outlives a failure: its marks of being applied go in at once
            fresh = None if careful else _mark_all_applied(session, [t.row for t in batch])
            # every customer's lock is held: what the handlers re-read now is what each would read in its turn
            # (SQLite's batch lasts 50 ms, most of it would be read for nothing)
            with read_ahead([(t.handler, t.event) for t in batch] if shares else []), \
                    writing_behind(session, enabled=not careful):  # the batch's counter bumps: one round trip
                if status is not None:
                    _apply_one(session, own, fresh)  # no savepoint: its failure is the job's, as if alone
                for other in others:
                    if time.monotonic() > until:
                        break  # the rest is left to their own jobs (SQLite locks none of the rows it read)
                    if careful:
                        _apply_along(session, other, inbox_id, done, failed)
                        continue
                    try:
                        _apply_one(session, other, fresh)
                    except JOB_TIMEOUT:
                        raise  # out of time: the job fails, the events wait for their own jobs
                    except Exception as exc:  # noqa: BLE001 - the whole batch is rolled back and applied carefully
                        raise _Redo(other.row.id, exc) from exc
                    done.append(other.row)
                if not careful:
                    _sent_behind(session, inbox_id)
            if shares:  # one database: the rows are settled in the handlers' own transaction, by one statement
                _settle_in(session, [r.id for r in ([own.row] if status is not None else []) + done],
                           InboxStatus.done)
        if status is None:
            _after(None, done, failed)
            return None
        if not shares:  # after the handlers' commit, in the inbox's own file (a crash between: the jobs settle them)
            _settle([inbox_id, *(r.id for r in done)], InboxStatus.done)
    except _Redo:
        raise
    except PERMANENT_ERRORS as exc:
        return _failed_for_good(inbox_id, exc, traceback.format_exc())
    except Exception:
        _record_failure(inbox_id, traceback.format_exc())
        raise  # the queue retries with backoff; the row says how often it has been tried
    _after(own.row, done, failed)
    return InboxStatus.done.value


def _sent_behind(session: Session, inbox_id: int) -> None:
    """Send the counter bumps the batch held back: when that fails, no one event is to blame, so all are redone."""
    try:
        flush_behind(session)
    except JOB_TIMEOUT:
        raise
    except Exception as exc:  # noqa: BLE001 - applied again one savepoint an event, nothing held back
        raise _Redo(inbox_id, exc) from exc


def _apply_along(session: Session, other: _Taken, inbox_id: int, done: list, failed: list) -> None:
    """Apply an event taken along in a savepoint of its own: a failure rolls back its work alone."""
    try:
        with session.begin_nested():
            _apply_one(session, other)
        done.append(other.row)
    except PERMANENT_ERRORS as exc:
        failed.append((other.row.id, exc, traceback.format_exc()))
    except JOB_TIMEOUT:
        raise  # out of time: not one more event
    except Exception as exc:  # noqa: BLE001 - left untouched for its own job and its retries
        log.info("inbox #%s: not applied along with #%s (%s), left for its own job", other.row.id,
                 inbox_id, type(exc).__name__)


def _after(own: InboxEvent | None, along: list[InboxEvent], failed) -> None:
    """What follows the commit: the jobs of the events taken along withdrawn, the counts, the permanent failures."""
    withdraw([job_name(r.id, r.content_key) for r in along])  # they have nothing left to do
    for row in ([own] if own is not None else []) + along:
        PROCESSED.labels(row.source, "done").inc()
    for inbox_id, exc, error in failed:
        _failed_for_good(inbox_id, exc, error)


def _apply_one(session: Session, taken: _Taken, fresh: set[int] | None = None) -> None:
    """Run the event's handler unless an earlier attempt applied it; `fresh`: the batch's rows marked just now."""
    applies = _mark_applied(session, taken.row) if fresh is None else taken.row.id in fresh
    if applies:
        taken.handler(session, taken.event)
    else:
        log.info("inbox #%s: already applied by an earlier attempt, marking it done", taken.row.id)


def _lock_row(session: Session, inbox_id: int, wait: bool) -> str | None:
    """The row's status, locked until the transaction ends; None when another transaction holds it (not `wait`)."""
    q = select(InboxEvent.status).where(InboxEvent.id == inbox_id).with_for_update(skip_locked=not wait)
    status = session.scalar(q)
    return status if status is not None or wait else (None if _exists(session, inbox_id) else "missing")


def _status_apart(inbox_id: int) -> str:
    """The row's status in the inbox's own file (SQLite: no row lock; this process applies one job at a time)."""
    with read_scope(inbox_engine()) as s:
        return s.scalar(select(InboxEvent.status).where(InboxEvent.id == inbox_id)) or "missing"


def _exists(session: Session, inbox_id: int) -> bool:
    return session.scalar(select(InboxEvent.id).where(InboxEvent.id == inbox_id)) is not None


def batchable(event: Event) -> bool:
    """Whether an event is applied in a batch with others: only one about a customer, whom the batch's advisory
    locks (taken sorted) serialise.

    The rest are applied one a transaction: Pay's notifications lock a group-buy group and its offer each, in the
    order they arrive, and a batch holding forty groups' rows deadlocked with consumers joining those groups (who
    lock their group, then the offer, then their own traits).
    """
    return subject_of(event) is not None


def _about_a_customer():
    """`subject_of` in SQL, so the batch's query locks no row it would leave out (their jobs would wait for it)."""
    named = lambda field: func.coalesce(InboxEvent.data[field].as_string(), "") != ""  # noqa: E731
    return or_(named("ExternalUserID"), and_(InboxEvent.source != "wecom", named("FromUserName")))


def _others(session: Session | None, inbox_id: int) -> list[_Taken]:
    """Waiting batchable events, oldest first, that have a handler and can be handled: with `session` (the inbox in
    the main database) those no other job holds, locked till commit; without, read from the inbox's own file."""
    q = (select(InboxEvent).where(InboxEvent.status == InboxStatus.received.value, InboxEvent.id != inbox_id,
                                  _about_a_customer(), InboxEvent.due_at <= utcnow())
         .order_by(InboxEvent.id).limit(BATCH - 1))
    if session is not None:
        rows = list(session.scalars(q.with_for_update(skip_locked=True)))
    else:
        with read_scope(inbox_engine()) as s:
            rows = list(s.scalars(q))
    taken = []
    for row in rows:
        handler = handler_for(row.source, row.msg_type, row.event, row.change_type)
        try:
            if handler is not None and batchable((one := _taken(row, handler)).event):
                taken.append(one)
        except PERMANENT_ERRORS:
            pass  # its own job records the failure
    return taken


def subject_of(event: Event) -> str | None:
    """The lock key of the customer an event is about: the WeCom contact, else the OA/MP user; None for neither."""
    if external_userid := event.get("ExternalUserID"):
        return contact_lock_key(external_userid)
    if event.source != "wecom" and (openid := event.get("FromUserName")):
        return f"{event.source}-user:{openid}"
    return None


def _failed_for_good(inbox_id: int, exc: Exception, error: str) -> str:
    _record_failure(inbox_id, error, permanent=True)
    log.error("inbox #%s: cannot be handled (%s: %s), failed without retries", inbox_id, type(exc).__name__,
              str(exc)[:200])
    return InboxStatus.failed.value


def _mark_applied(session, row: InboxEvent) -> bool:
    # Unique on the content key, in the handler's transaction: True for the one attempt that applies the event.
    # On PostgreSQL a concurrent copy waits here until the first commits (then skips) or rolls back (then applies).
    return upsert(session, InboxApplied.__table__, {"content_key": row.content_key, "inbox_id": row.id,
                                                    "applied_at": utcnow()},
                  ["content_key"], returning=InboxApplied.content_key) is not None


# Two batches never hold one row (FOR UPDATE SKIP LOCKED), so never one content key: the order is only tidiness.
_MARK_ALL_APPLIED = text(
    "INSERT INTO webhook_inbox_applied (content_key, inbox_id, applied_at) "
    "SELECT k, i, :at FROM unnest(CAST(:keys AS text[]), CAST(:ids AS integer[])) AS t(k, i) ORDER BY k "
    "ON CONFLICT (content_key) DO NOTHING RETURNING inbox_id")


def _mark_all_applied(session: Session, rows: list[InboxEvent]) -> set[int]:
    """`_mark_applied` for a whole batch by one statement (PostgreSQL): the ids of the rows this attempt applies."""
    if not rows:
        return set()
    return set(session.scalars(_MARK_ALL_APPLIED, {"at": utcnow(), "keys": [r.content_key for r in rows],
                                                   "ids": [r.id for r in rows]}))


def _settle(inbox_ids: list[int], status: InboxStatus) -> int:
    """Mark `received` rows done or unhandled in a transaction of their own; how many (others settled the rest)."""
    with inbox_scope() as session:
        return _settle_in(session, inbox_ids, status)


def _settle_in(session: Session, inbox_ids: list[int], status: InboxStatus) -> int:
    if not inbox_ids:
        return 0
    result = session.execute(
        update(InboxEvent).where(InboxEvent.id.in_(inbox_ids), InboxEvent.status == InboxStatus.received.value)
        .values(status=status.value, processed_at=utcnow(), error=None,
                attempts=InboxEvent.attempts + (1 if status is InboxStatus.done else 0)))
    return result.rowcount


def _record_failure(inbox_id: int, error: str, permanent: bool = False) -> None:
    with inbox_scope() as session:
        row = session.scalar(select(InboxEvent).where(InboxEvent.id == inbox_id).with_for_update())
        if row is None or row.status != InboxStatus.received.value:
            return
        row.attempts = (row.attempts or 0) + 1
        row.error = error[-8000:]
        if permanent or row.attempts >= MAX_ATTEMPTS:
            row.status = InboxStatus.failed.value
            PROCESSED.labels(row.source, "failed").inc()
            if not permanent:
                log.error("inbox #%s: failed for good after %d attempts", inbox_id, row.attempts)
        else:
            wait = RETRY_INTERVALS[min(row.attempts, len(RETRY_INTERVALS)) - 1]
            row.due_at = utcnow() + timedelta(seconds=wait)  # keeps the sweeper off while the retry waits
            PROCESSED.labels(row.source, "retry").inc()
            log.warning("inbox #%s: attempt %d failed, retrying", inbox_id, row.attempts)
