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
            seen.append(statement.count("%(source"))  # one bound set per row in the multi-row VALUES

    return seen


@POSTGRESQL
def test_callbacks_arriving_while_a_write_is_in_flight_are_stored_by_the_next_write_together(settings, monkeypatch):
    from config.queue import using
    from webhooks import group_store
    from webhooks.crypto import parse_body
    from webhooks.inbox import inbox_engine, process_inbox

    inserts = _inserts(inbox_engine())
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
    from config.queue import using
    from webhooks.group_store import _Entry, _write
    from webhooks.inbox import inbox_row
    from webhooks.crypto import parse_body

    entries = []
    for c in range(3):
        text = _edit(c)
        entries.append(_Entry("wecom", inbox_row("wecom", text, parse_body(text)[0]), ()))
    entries[1].row["source"] = "x" * 500  # wider than the column: PostgreSQL refuses the statement
    with using(_Queue()) as queue:
        _write(entries)
    # then the refused row's request gets the database's error, and the two others are stored and queued
    assert all(e.done for e in entries)
    assert type(entries[1].error).__name__ == "DataError" and entries[1].stored is None
    assert [e.error for e in (entries[0], entries[2])] == [None, None]
    assert [r.id for r in inbox_rows()] == [entries[0].stored.inbox_id, entries[2].stored.inbox_id]
    assert len(queue.jobs) == 2


@POSTGRESQL
def test_with_the_database_gone_every_waiting_request_gets_the_error_and_the_next_write_works(settings, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from config.queue import using
    from webhooks import group_store
    from webhooks.crypto import parse_body

    calls, real_insert = [], group_store._insert

    def gone(rows):
        calls.append(len(rows))
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(group_store, "_insert", gone)
    with using(_Queue()) as queue:
        text = _edit(0)
        with pytest.raises(OperationalError):
            group_store.store_at_once("wecom", text, parse_body(text)[0])
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
