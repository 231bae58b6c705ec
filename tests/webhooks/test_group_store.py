"""The acknowledgement's write on PostgreSQL (webhooks.group_store): callbacks arriving together are stored by one
statement and their jobs queued in one round trip, and still each is stored once, answered with its own row, and
answered only after that row committed; a row the database refuses fails alone."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event

from tests.webhooks.conftest import fixture_text, inbox_rows

EDIT = fixture_text("wecom", "event__change_external_contact__edit_external_contact.xml")
POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _edit(customer: int) -> str:
    return EDIT.replace("wmEXT0001", f"wmGROUP{customer:03d}")


def _welcome(inbox_id):  # stands in for the welcome message's job
    pass


class _Queue:
    """A queue backend that keeps the jobs, and how many were handed over together each time."""

    def __init__(self):
        self.jobs, self.handovers = [], []

    def dispatch(self, job):
        self.dispatch_all([job])

    def dispatch_all(self, jobs):
        self.handovers.append(len(jobs))
        self.jobs += jobs
        return []


def _inserts(engine) -> list[int]:
    """Rows per INSERT into webhook_inbox, appended as statements run."""
    seen = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO WEBHOOK_INBOX"):
            # A multi-row VALUES binds each row's columns under its own suffix: source__0, source__1, …
            seen.append(sum(1 for name in parameters if name == "source" or name.startswith("source__")))

    return seen


@POSTGRESQL
def test_callbacks_arriving_while_a_write_is_in_flight_are_stored_by_the_next_write_together(settings, monkeypatch):
    from config.queue import using
    from webhooks import group_store
    from webhooks.crypto import parse_body
    from webhooks.inbox import process_inbox

    inserts = _inserts(group_store.ack_engine())
    real_insert = group_store._insert
    first_in_flight, go_on = threading.Event(), threading.Event()

    def held_first(rows):  # the first write stays in flight until every other request is waiting
        if not first_in_flight.is_set():
            first_in_flight.set()
            assert go_on.wait(10)
        return real_insert(rows)

    monkeypatch.setattr(group_store, "_insert", held_first)
    texts = [_edit(c) for c in range(12)] + [_edit(3), _edit(3)]  # customer 3's callback delivered three times

    def deliver(text):
        data, _ = parse_body(text)
        return group_store.store_at_once("wecom", text, data, [(_welcome, "fast")])

    with using(_Queue()) as queue, ThreadPoolExecutor(len(texts)) as pool:
        # given one callback being written
        first = pool.submit(deliver, texts[0])
        assert first_in_flight.wait(10)
        # when thirteen more arrive meanwhile (three copies of one among them), then none is answered yet
        rest = [pool.submit(deliver, t) for t in texts[1:]]
        threading.Event().wait(0.3)
        assert not any(f.done() for f in [first, *rest])
        go_on.set()
        answers = [first.result(10), *(f.result(10) for f in rest)]
    rows = inbox_rows()
    by_key = {r.payload: r.id for r in rows}
    # then the first was written alone and all the others by one statement
    assert inserts == [1, 13]
    # and every callback was stored once and answered with its own row
    assert len(rows) == 12 and all(a.inbox_id == by_key[t] for a, t in zip(answers, texts, strict=True))
    # and of customer 3's three copies exactly one is new, the others are its duplicates
    copies = [a for a, t in zip(answers, texts, strict=True) if t == _edit(3)]
    assert sorted(a.created for a in copies) == [False, False, True] and len({a.inbox_id for a in copies}) == 1
    # and each new row's two jobs were queued, in two handovers (the first write's, then the others')
    assert queue.handovers == [2, 22]
    assert sorted((j.func, j.args) for j in queue.jobs if j.func is process_inbox) == \
        sorted((process_inbox, (r.id,)) for r in rows)
    assert sorted(j.args for j in queue.jobs if j.func is _welcome) == sorted((r.id,) for r in rows)
    # and a callback delivered again later is answered with its earlier row and queues nothing
    again = deliver(texts[5])
    assert (again.inbox_id, again.created) == (by_key[texts[5]], False) and len(inbox_rows()) == 12


@POSTGRESQL
def test_a_row_the_database_refuses_fails_alone_and_the_others_of_its_write_are_stored(settings):
    from webhooks.group_store import _Entry, _write
    from webhooks.inbox import inbox_row
    from webhooks.crypto import parse_body

    entries = []
    for c in range(3):
        text = _edit(c)
        entries.append(_Entry("wecom", inbox_row("wecom", text, parse_body(text)[0]), ()))
    # The row is made to fail: inbox_row keeps every value within its column (models.py: source is String(20)),
    # so only a value set behind its back is wider than the column, and PostgreSQL refuses the statement.
    entries[1].row["source"] = "x" * 500
    jobs = _write(entries)
    # then the refused row's request gets the database's error, and the two others are stored with their jobs
    assert type(entries[1].error).__name__ == "DataError" and entries[1].stored is None
    assert [e.error for e in (entries[0], entries[2])] == [None, None]
    assert [r.id for r in inbox_rows()] == [entries[0].stored.inbox_id, entries[2].stored.inbox_id]
    assert sorted(j.args for j in jobs) == sorted((e.stored.inbox_id,) for e in (entries[0], entries[2]))


@POSTGRESQL
def test_with_the_database_gone_every_waiting_request_gets_the_error_and_the_next_write_works(settings, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from config.queue import using
    from webhooks import group_store
    from webhooks.crypto import parse_body
    from webhooks.inbox import InboxBusy

    calls, real_insert = [], group_store._insert

    def gone(rows):
        calls.append(len(rows))
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(group_store, "_insert", gone)
    with using(_Queue()) as queue:
        text = _edit(0)
        with pytest.raises(InboxBusy, match="connection refused") as busy:
            group_store.store_at_once("wecom", text, parse_body(text)[0])
        assert isinstance(busy.value.__cause__, OperationalError)
        # the write is not tried row by row (a database that is down would be waited for once per row)
        assert calls == [1]
        monkeypatch.setattr(group_store, "_insert", real_insert)
        stored = group_store.store_at_once("wecom", text, parse_body(text)[0])
    assert stored.created and [r.id for r in inbox_rows()] == [stored.inbox_id] and len(queue.jobs) == 1


@POSTGRESQL
def test_a_write_stopped_by_anything_else_answers_busy_and_a_failed_enqueue_still_answers_stored(settings, monkeypatch):
    from config.queue import using
    from webhooks import group_store
    from webhooks.crypto import parse_body
    from webhooks.inbox import InboxBusy

    text = _edit(0)
    real_insert = group_store._insert
    monkeypatch.setattr(group_store, "_insert", lambda rows: 1 / 0)  # a fault of no known kind
    # then the request is answered busy (503: Tencent delivers again), never left waiting, nothing stored
    with pytest.raises(InboxBusy):
        group_store.store_at_once("wecom", text, parse_body(text)[0])
    assert inbox_rows() == []
    # and when the row is stored but queueing its jobs fails outright, the answer is still "stored"
    monkeypatch.setattr(group_store, "_insert", real_insert)
    monkeypatch.setattr(group_store, "enqueue_all", lambda jobs: 1 / 0)
    with using(_Queue()):
        stored = group_store.store_at_once("wecom", text, parse_body(text)[0])
    assert stored.created and [r.id for r in inbox_rows()] == [stored.inbox_id]


def _deliver(group_store, text, extra_jobs=()):
    from webhooks.crypto import parse_body

    return group_store.store_at_once("wecom", text, parse_body(text)[0], extra_jobs)


@POSTGRESQL
def test_a_request_that_gets_no_turn_in_time_answers_busy_and_its_row_is_never_written(settings, monkeypatch):
    from config.queue import using
    from webhooks import group_store
    from webhooks.inbox import InboxBusy

    monkeypatch.setattr(group_store, "TURN_TIMEOUT", 0.3)
    real_insert, in_flight, go_on = group_store._insert, threading.Event(), threading.Event()

    def held(rows):
        in_flight.set()
        assert go_on.wait(10)
        return real_insert(rows)

    monkeypatch.setattr(group_store, "_insert", held)
    with using(_Queue()), ThreadPoolExecutor(2) as pool:
        first = pool.submit(_deliver, group_store, _edit(1))
        assert in_flight.wait(10)
        # when a second request waits longer than its turn allows behind a write that hangs
        with pytest.raises(InboxBusy, match="no turn"):
            _deliver(group_store, _edit(2))
        monkeypatch.setattr(group_store, "_insert", real_insert)
        go_on.set()
        stored = first.result(10)
        # then it was answered busy (Tencent delivers it again) and no later write stores it behind its back
        assert _deliver(group_store, _edit(3)).created
    assert sorted(r.payload for r in inbox_rows()) == sorted([_edit(1), _edit(3)])
    assert stored.created


def _connection_reset():
    from sqlalchemy.exc import OperationalError

    return OperationalError("SELECT", {}, Exception("connection reset"))


def _no_connection_free():
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return PoolTimeout("QueuePool limit reached, connection reset")  # not a DBAPIError


@POSTGRESQL
@pytest.mark.parametrize("fault", [_connection_reset, _no_connection_free])
def test_once_the_insert_committed_its_rows_are_stored_and_queued_even_if_finding_earlier_copies_fails(
        settings, monkeypatch, fault):
    from config.queue import using
    from webhooks import group_store
    from webhooks.group_store import _Entry, _write
    from webhooks.crypto import parse_body
    from webhooks.inbox import InboxBusy, inbox_row

    with using(_Queue()):
        before = _deliver(group_store, _edit(0))

    def gone(keys):
        raise fault()

    monkeypatch.setattr(group_store, "_earlier", gone)
    entries = [_Entry("wecom", inbox_row("wecom", t, parse_body(t)[0]), ((_welcome, "fast"),))
               for t in (_edit(0), _edit(1), _edit(2))]
    entries[2].extra_jobs = ((_welcome, "no-such-queue"),)  # a job that cannot be made
    jobs = _write(entries)
    rows = {r.payload: r.id for r in inbox_rows()}
    # then the earlier copy's request alone answers busy (its next delivery finds the row)
    with pytest.raises(InboxBusy, match="connection reset"):
        entries[0].outcome()
    # and the two new rows are answered stored, each with its own row
    assert [(e.stored.inbox_id, e.stored.created) for e in entries[1:]] == [(rows[_edit(1)], True),
                                                                           (rows[_edit(2)], True)]
    assert rows[_edit(0)] == before.inbox_id and len(rows) == 3
    # and the jobs of the row whose job could not be made are left to the sweeper, the others' are queued
    assert sorted((j.func.__name__, j.args) for j in jobs) == [("_welcome", (rows[_edit(1)],)),
                                                              ("process_inbox", (rows[_edit(1)],))]


@POSTGRESQL
def test_a_write_waiting_on_a_lock_gives_up_at_the_lock_timeout_and_answers_busy(settings):
    from config.queue import using
    from webhooks import group_store
    from webhooks.crypto import parse_body
    from webhooks.inbox import InboxBusy, inbox_engine, inbox_row
    from webhooks.models import InboxEvent

    callback = _edit(7)
    row = inbox_row("wecom", callback, parse_body(callback)[0])
    # given another transaction that inserted the same callback and has not committed
    with inbox_engine().connect() as other:
        other.execute(InboxEvent.__table__.insert(), row)
        with using(_Queue()) as queue:
            # when the ack's write has to wait for it, then the connection's lock timeout stops it (not the
            # statement timeout, and not WeCom's five seconds) and the request answers busy
            with pytest.raises(InboxBusy, match="LockNotAvailable"):
                _deliver(group_store, callback)
        other.rollback()
    assert queue.jobs == [] and inbox_rows() == []


@POSTGRESQL
def test_a_lone_row_the_database_refuses_is_answered_503_not_500(settings, monkeypatch):
    from fastapi import HTTPException
    from sqlalchemy.exc import DataError

    from webhooks import group_store
    from webhooks.crypto import parse_body
    from webhooks.intake import accept

    def refused(rows):
        raise DataError("INSERT", {}, Exception("value too long for type character varying(20)"))

    monkeypatch.setattr(group_store, "_insert", refused)
    text = _edit(4)
    # when the database refuses the only row of a write (a fault of ours, never of the content)
    with pytest.raises(HTTPException) as answer:
        accept("wecom", text, parse_body(text)[0])
    # then the request is answered busy, so Tencent delivers it again, and nothing is stored
    assert answer.value.status_code == 503 and answer.value.headers == {"Retry-After": "1"}
    assert inbox_rows() == []


@POSTGRESQL
def test_callbacks_arriving_while_a_write_queues_its_jobs_are_written_by_the_next_write_together(
        settings, monkeypatch):
    from config.queue import using
    from webhooks import group_store

    inserts = _inserts(group_store.ack_engine())
    first_queueing, go_on = threading.Event(), threading.Event()

    class _SlowQueue(_Queue):
        def dispatch_all(self, jobs):
            if not first_queueing.is_set():  # the first write's jobs: held until the others are waiting
                first_queueing.set()
                assert go_on.wait(10)
            return super().dispatch_all(jobs)

    with using(_SlowQueue()) as queue, ThreadPoolExecutor(4) as pool:
        first = pool.submit(_deliver, group_store, _edit(1))
        assert first_queueing.wait(10)
        # when three callbacks come while the first write is queueing its jobs
        rest = [pool.submit(_deliver, group_store, _edit(c)) for c in (2, 3, 4)]
        threading.Event().wait(0.3)
        # then none of them (and not the first) is answered before the first's jobs are handed over
        assert not any(f.done() for f in [first, *rest])
        go_on.set()
        assert all(f.result(15).created for f in [first, *rest])
    # and the three were written by one statement after it, their jobs handed over together
    assert inserts == [1, 3] and queue.handovers == [1, 3] and len(inbox_rows()) == 4
