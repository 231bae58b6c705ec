"""The acknowledgement's write on PostgreSQL: callbacks that arrive together are stored by one statement and
their jobs queued by one round trip (a group commit).

Each request thread hands its row to the group. The first to find no write in flight writes every row waiting
then: one `INSERT … ON CONFLICT DO NOTHING RETURNING` in autocommit (durable when it returns), then the jobs of
the new rows in one Redis pipeline, then it wakes the others. Rows that arrive meanwhile wait for the next write.
Under load each write carries the rows of many requests (one statement, one commit, one round trip to Redis for
all of them); alone, a request writes its own row as it always did. Every request still answers only after the
statement holding its row has committed.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, OperationalError

from config.queue import enqueue_all, new_job
from webhooks.inbox import InboxBusy, Stored, inbox_engine, inbox_row, intake_jobs, stored_as
from webhooks.models import InboxEvent

log = logging.getLogger(__name__)

_INSERT = (insert(InboxEvent.__table__).on_conflict_do_nothing(index_elements=["content_key"])
           .returning(InboxEvent.id, InboxEvent.content_key))


@dataclass(eq=False)
class _Entry:
    source: str
    row: dict
    extra_jobs: tuple
    done: bool = False
    stored: Stored | None = None
    error: BaseException | None = None

    def outcome(self) -> Stored:
        if self.error is not None:
            raise self.error
        return self.stored


class _Group:
    """Rows waiting for a write, and whether one is in flight."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[_Entry] = []
        self._writing = False

    def store(self, entry: _Entry) -> Stored:
        with self._cond:
            self._waiting.append(entry)
            while self._writing and not entry.done:
                self._cond.wait()
            if entry.done:  # written by the write that was in flight
                return entry.outcome()
            self._writing = True
            batch, self._waiting = self._waiting, []
        try:
            _write(batch)
        except Exception:  # noqa: BLE001 - answered busy below, and delivered again
            log.exception("inbox: a write of %d callbacks stopped", len(batch))
        finally:
            for other in batch:  # whatever stopped the write, nobody waits for ever: 503, Tencent delivers again
                if not other.done:
                    other.error, other.done = other.error or InboxBusy("the inbox write stopped"), True
            with self._cond:
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

    Raises what the write raised (OperationalError when the database cannot be reached): nothing is stored then.
    A failed enqueue loses nothing: the row waits for the sweeper, as after any commit.
    """
    return _GROUP.store(_Entry(source, inbox_row(source, plaintext, data), tuple(extra_jobs)))


def _write(batch: list[_Entry]) -> None:
    try:
        ids, inserted = _insert([e.row for e in batch])
    except DBAPIError as exc:
        if len(batch) == 1 or isinstance(exc, OperationalError):  # the database itself: every row's answer
            for entry in batch:
                entry.error, entry.done = exc, True
            return
        for entry in batch:  # a row the database refused: each on its own, so the others are stored
            _write([entry])
        return
    jobs = []
    created: set[str] = set()
    for entry in batch:
        key = entry.row["content_key"]
        inbox_id = ids.get(key)
        new = key in inserted and key not in created  # the same callback twice in one write: stored once
        created.add(key)
        entry.stored = stored_as(entry.source, key, inbox_id if new else None, lambda i=inbox_id: i)
        if new:
            jobs += [new_job(func, inbox_id, **options) for func, options in intake_jobs(inbox_id, key,
                                                                                         entry.extra_jobs)]
    try:
        _enqueue(jobs)
    except Exception:  # noqa: BLE001 - the rows are stored (their answer is 200): the sweeper enqueues them
        log.exception("inbox: %d stored events not enqueued", len(jobs))
    for entry in batch:
        entry.done = True


def _insert(rows: list[dict]) -> tuple[dict[str, int], set[str]]:
    """({content key: inbox id} of every row, the keys this statement stored)."""
    with inbox_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        ids = {key: inbox_id for inbox_id, key in conn.execute(_INSERT, rows).all()}
        inserted = set(ids)
        if missing := {r["content_key"] for r in rows} - inserted:  # stored before: their earlier copy
            ids.update(conn.execute(select(InboxEvent.content_key, InboxEvent.id)
                                    .where(InboxEvent.content_key.in_(missing))).all())
    return ids, inserted


def _enqueue(jobs: list) -> None:
    # Each on its own: the welcome job (which no sweeper finds again) goes even if another one did not.
    for job, exc in enqueue_all(jobs):
        log.error("inbox #%s: stored, %s not enqueued: %s: %s", job.args[0], job.func.__name__,
                  type(exc).__name__, exc)
