"""The acknowledgement's write on PostgreSQL: callbacks that arrive together are stored by one statement and
their jobs queued by one round trip (a group commit).

Each request thread hands its row to the group. The first to find no write in flight writes every row waiting
then: one `INSERT … ON CONFLICT DO NOTHING RETURNING` in autocommit (durable when it returns), then the jobs of
its new rows in one Redis pipeline, then it wakes the others; the rows that arrived meanwhile wait for the next
write. Under load each write carries the rows of many requests (one statement, one commit, one round trip to
Redis for all of them); alone, a request writes its own row as it always did. Every request still answers only
after the statement holding its row has committed, and within WeCom's five seconds: a request that cannot get
its turn in time, or whose write stops, answers busy (503) and Tencent delivers it again.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, event, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError

from config.database import make_engine
from config.queue import enqueue_all, new_job
from config.settings import get_settings
from webhooks.inbox import INBOX_BUSY_TIMEOUT, InboxBusy, Stored, inbox_row, intake_jobs, stored_as
from webhooks.models import InboxEvent

log = logging.getLogger(__name__)

_INSERT = (insert(InboxEvent.__table__).on_conflict_do_nothing(index_elements=["content_key"])
           .returning(InboxEvent.id, InboxEvent.content_key))
TURN_TIMEOUT = 2 * INBOX_BUSY_TIMEOUT  # seconds a request waits for a write to take its row, then answers busy
# Seconds each statement of a write (and a new connection's opening) may take. A request taken by a write waits for
# that write: its insert, when some rows were stored before their lookup, and the Redis pipeline (bounded by its
# socket timeout); a hung write answers its requests late, and WeCom delivers them again, found as duplicates.
STATEMENT_TIMEOUT = 2 * INBOX_BUSY_TIMEOUT


@dataclass(eq=False)
class _Entry:
    source: str
    row: dict
    extra_jobs: tuple
    taken: bool = False  # by a write: from then on only that write answers it
    done: bool = False
    stored: Stored | None = None
    error: BaseException | None = None

    def outcome(self) -> Stored:
        if self.error is None:
            return self.stored
        # A fresh exception for each request: one instance raised in many threads would share a traceback.
        cause = getattr(self.error, "orig", None) or self.error
        raise InboxBusy(f"not stored: {type(cause).__name__}: {str(cause)[:200]}") from self.error


class _Group:
    """Rows waiting for a write, and whether one is in flight."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[_Entry] = []
        self._writing = False

    def store(self, entry: _Entry) -> Stored:
        deadline = time.monotonic() + TURN_TIMEOUT
        with self._cond:
            self._waiting.append(entry)
            while not entry.done and (entry.taken or self._writing):
                left = deadline - time.monotonic()
                if left <= 0 and not entry.taken:
                    self._waiting.remove(entry)
                    raise InboxBusy(f"no turn to write within {TURN_TIMEOUT:.0f}s")
                self._cond.wait(max(left, 0.05))
            if entry.done:  # answered by the write that took it
                return entry.outcome()
            self._writing = True
            batch, self._waiting = self._waiting, []
            for taken in batch:
                taken.taken = True
        try:
            _enqueue(_write(batch))
        except Exception:  # noqa: BLE001 - answered busy below (or stored: the sweeper enqueues them)
            log.exception("inbox: a write of %d callbacks stopped", len(batch))
        finally:
            # The turn is handed on only now, not before the jobs are queued: the rows arriving meanwhile make
            # the next write larger, and a busy server's CPU is what limits it (handing it on first measured
            # 0.63-0.75x bare FastAPI in alternating runs, only now 0.64-1.11x: no gain, smaller writes).
            with self._cond:
                for taken in batch:  # whatever stopped the write, nobody waits for ever
                    if taken.stored is None and taken.error is None:
                        taken.error = InboxBusy("the inbox write stopped")
                    taken.done = True
                self._writing = False
                self._cond.notify_all()
        return entry.outcome()


_GROUP = _Group()


def _new_group() -> None:
    global _GROUP
    _GROUP = _Group()  # a forked child must not inherit a write some parent thread had in flight


os.register_at_fork(after_in_child=_new_group)


def store_at_once(source: str, plaintext: str, data: dict, extra_jobs=()) -> Stored:
    """Store a verified callback (or find its earlier copy) and, when new, enqueue its jobs: the ack's path.

    Raises InboxBusy when the row could not be stored in time (its cause chained): nothing is stored then.
    A failed enqueue loses nothing: the row waits for the sweeper, as after any commit.
    """
    return _GROUP.store(_Entry(source, inbox_row(source, plaintext, data), tuple(extra_jobs)))


def _write(batch: list[_Entry]) -> list:
    """Store the batch's rows and answer each entry; the jobs of the rows it stored, to be queued."""
    try:
        inserted = _insert([e.row for e in batch])
    except DBAPIError as exc:
        if len(batch) == 1 or isinstance(exc, OperationalError):  # the database itself: every row's answer
            for entry in batch:
                entry.error = exc
            return []
        return [job for entry in batch for job in _write([entry])]  # a row it refused: each on its own
    # Committed: from here on every stored row is answered as stored and queued, whatever else fails.
    earlier, lookup_error = {}, None
    if missing := {e.row["content_key"] for e in batch} - inserted.keys():
        try:
            earlier = _earlier(missing)
        except Exception as exc:  # noqa: BLE001 - only the duplicates' answer: busy; their next delivery finds it
            lookup_error = exc
    jobs, answered = [], set()
    for entry in batch:
        key = entry.row["content_key"]
        if key in inserted and key not in answered:  # the same callback twice in one write: stored once
            entry.stored = stored_as(entry.source, key, inserted[key])
            jobs += _jobs_of(entry, inserted[key])
        elif key in inserted or key in earlier:
            entry.stored = stored_as(entry.source, key, None, inserted.get(key) or earlier[key])
        else:  # stored before, and its copy not found (the lookup failed, or a purge removed it meanwhile)
            entry.error = lookup_error or InboxBusy("its earlier copy was not found")
        answered.add(key)
    return jobs


def _jobs_of(entry: _Entry, inbox_id: int) -> list:
    try:
        return [new_job(func, inbox_id, **options)
                for func, options in intake_jobs(inbox_id, entry.row["content_key"], entry.extra_jobs)]
    except Exception:  # noqa: BLE001 - stored all the same: the sweeper enqueues its processing
        log.exception("inbox #%s: stored, its jobs could not be made", inbox_id)
        return []


def ack_engine() -> Engine:
    """The engine of these writes: the inbox's database, each statement bounded by STATEMENT_TIMEOUT."""
    return _ack_engine(get_settings().database_url)


@functools.lru_cache(maxsize=4)
def _ack_engine(url: str) -> Engine:
    # Its own small pool: the bounds are the connections' settings, and no other work ever sees them. They are
    # set once per connection (not as startup `options`, which would replace any the URL carries).
    engine = make_engine(url, pool_size=2, max_overflow=4, pool_timeout=INBOX_BUSY_TIMEOUT,
                         connect_args={"connect_timeout": max(1, int(STATEMENT_TIMEOUT))})
    event.listen(engine, "connect", _bounded)
    return engine


def _bounded(dbapi_conn, _record) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT * 1000)}")
        cur.execute(f"SET lock_timeout = {int(INBOX_BUSY_TIMEOUT * 1000)}")
    dbapi_conn.commit()  # a SET inside the connection's first transaction would be undone by its rollback


def _insert(rows: list[dict]) -> dict[str, int]:
    """{content key: inbox id} of the rows this statement stored (committed when it returns)."""
    with ack_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return {key: inbox_id for inbox_id, key in conn.execute(_INSERT, rows).all()}


def _earlier(keys: set[str]) -> dict[str, int]:
    """{content key: inbox id} of rows stored before under these keys."""
    with ack_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return dict(conn.execute(select(InboxEvent.content_key, InboxEvent.id)
                                 .where(InboxEvent.content_key.in_(keys))).all())


def _enqueue(jobs: list) -> None:
    """Queue the jobs; a failure is logged (the rows are stored and answered so: the sweeper enqueues them)."""
    try:
        refused = enqueue_all(jobs)
    except Exception:  # noqa: BLE001
        log.exception("inbox: %d stored events not enqueued", len(jobs))
        return
    # Each on its own: the welcome job (which no sweeper finds again) goes even if another one did not.
    for job, exc in refused:
        log.error("inbox #%s: stored, %s not enqueued: %s: %s", job.args[0], job.func.__name__,
                  type(exc).__name__, exc)
