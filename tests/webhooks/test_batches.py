"""A job applies other waiting events along with its own: one customer's events are still never applied
concurrently, each event is applied once, and an event taken along keeps the failure handling it has alone.
On SQLite (one write lock for every writer) events are taken along only while the lock is young."""
from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from webhooks import dispatch
from webhooks.exceptions import PermanentEventError
from tests.webhooks.conftest import fixture_text, inbox_rows, store_all

EDIT = fixture_text("wecom", "event__change_external_contact__edit_external_contact.xml")
KIND = ("wecom", "event", "change_external_contact", "edit_external_contact")
CUSTOMERS, EACH, JOBS = 2, 30, 4
POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # where batches are taken


def _after_commit_job(inbox_id: int) -> None:
    """A job a handler queues for after its commit (the tests only record it)."""


def _a_member() -> int:
    """The id of a new member, committed."""
    from config.database import session_scope
    from membership.models import Member

    with session_scope() as s:
        member = Member(name="客户")
        s.add(member)
        s.flush()
        return member.id


def _edit(customer: int, n: int) -> str:
    # a distinct plaintext (so a distinct event) for each customer and time
    return EDIT.replace("wmEXT0001", f"wmBATCH{customer:02d}").replace(
        "<CreateTime>1700000000</CreateTime>", f"<CreateTime>{1700000000 + n}</CreateTime>")


class Overlaps:
    """An instrumented handler: records which job applied which event, and any two of one customer's at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.applied: Counter[int] = Counter()
        self.along: list[int] = []  # events applied by a job that was not their own
        self.job = threading.local()

    def __call__(self, session, ev) -> None:
        who = ev.get("ExternalUserID")
        with self.lock:
            if self.inside[who]:
                self.overlaps.append(who)
            self.inside[who] += 1
            self.applied[ev.inbox_id] += 1
            if getattr(self.job, "own", ev.inbox_id) != ev.inbox_id:
                self.along.append(ev.inbox_id)
        threading.Event().wait(0.003)  # stay inside a moment, so another job of this customer would be caught
        with self.lock:
            self.inside[who] -= 1

    def run(self, inbox_id: int) -> str:
        from webhooks.inbox import process_inbox

        self.job.own = inbox_id
        return process_inbox(inbox_id)


@POSTGRESQL
def test_jobs_applying_batches_concurrently_never_apply_one_customers_events_at_once(settings, enqueued,
                                                                                    monkeypatch):
    handler = Overlaps()
    monkeypatch.setitem(dispatch.HANDLERS, KIND, handler)
    # given many waiting events of two customers, in a random order
    edits = [_edit(c, n) for n in range(EACH) for c in range(CUSTOMERS)]
    random.Random(13).shuffle(edits)
    ids = store_all(edits)
    # when several workers run their jobs at once, each job taking other waiting events along
    queue, errors = list(ids), []
    take = threading.Lock()

    def worker() -> None:
        while True:
            with take:
                if not queue:
                    return
                inbox_id = queue.pop(0)
            try:
                handler.run(inbox_id)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(JOBS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and errors == []
    # then jobs did apply events along with their own, every event once, and never two of one customer at once
    assert handler.along, "no job took another event along: the batches this test is about did not happen"
    assert handler.applied == Counter({i: 1 for i in ids})
    assert handler.overlaps == []
    assert [r.status for r in inbox_rows()] == ["done"] * len(ids)


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_an_event_taken_along_keeps_its_own_failure_handling(settings, enqueued, monkeypatch):
    from webhooks.inbox import process_inbox

    # given three waiting events: the second meets a transient error, the third a permanent one
    first, transient, permanent = store_all([_edit(0, 0), _edit(1, 0), _edit(2, 0)])
    calls = Counter()

    def handler(session, ev):
        calls[ev.inbox_id] += 1
        if ev.inbox_id == transient:
            raise RuntimeError("WeCom busy")
        if ev.inbox_id == permanent:
            raise PermanentEventError("event has no ExternalUserID")

    monkeypatch.setitem(dispatch.HANDLERS, KIND, handler)
    # when the first event's job runs and takes the others along
    assert process_inbox(first) == "done"
    rows = {r.id: r for r in inbox_rows()}
    # then the first is done; the permanent failure is recorded once; the transient one is left untouched.
    # On PostgreSQL the batch is applied without savepoints first: the transient failure rolled it back whole
    # (had the first's mark of being applied survived, its second try would have skipped the handler), and the
    # batch was applied again, one savepoint an event
    again = 2 if settings.database_url.startswith("postgresql") else 1
    assert calls == Counter({first: again, transient: again, permanent: 1})
    assert (rows[first].status, rows[first].attempts) == ("done", 1)
    assert (rows[permanent].status, rows[permanent].attempts) == ("failed", 1)
    assert "event has no ExternalUserID" in rows[permanent].error
    assert (rows[transient].status, rows[transient].attempts, rows[transient].error) == ("received", 0, None)
    # and each one's own job then does what it does alone: the permanent one is not tried again, the
    # transient one is tried, recorded and raised for the queue's retry with backoff
    assert process_inbox(permanent) == "failed"
    with pytest.raises(RuntimeError):
        process_inbox(transient)
    rows = {r.id: r for r in inbox_rows()}
    assert calls == Counter({first: again, transient: again + 1, permanent: 1})
    assert (rows[permanent].status, rows[permanent].attempts) == ("failed", 1)
    assert (rows[transient].status, rows[transient].attempts) == ("received", 1)
    assert rows[transient].due_at > rows[transient].received_at and "WeCom busy" in rows[transient].error


@POSTGRESQL
@pytest.mark.redis
def test_a_batch_withdraws_the_queued_jobs_of_the_events_it_took_along(settings, redis_url, monkeypatch):
    from rq import Queue
    from rq.job import Job

    from config.redis import get_redis
    from config.settings import get_settings
    from siyu.worker import RedactingSimpleWorker
    from webhooks.inbox import BATCH

    monkeypatch.setenv("SIYU_REDIS_URL", redis_url)
    get_settings.cache_clear()
    handler = Overlaps()
    monkeypatch.setitem(dispatch.HANDLERS, KIND, handler)
    # given 50 waiting events of two customers, each with its own job queued in RQ
    ids = store_all([_edit(c, n) for n in range(25) for c in range(2)])
    redis = get_redis()
    default = Queue("default", connection=redis)
    assert default.count == len(ids)
    # when a real worker runs the queue
    RedactingSimpleWorker(["fast", "default", "low"], connection=redis).work(burst=True)
    # then every event is applied once, and only the jobs whose events no batch had taken ran: the first took
    # the next BATCH - 1 along and withdrew their jobs, the next to run took the rest
    assert handler.applied == Counter({i: 1 for i in ids}) and handler.overlaps == []
    assert [r.status for r in inbox_rows()] == ["done"] * len(ids)
    ran = [j for j in Job.fetch_many(default.finished_job_registry.get_job_ids(), connection=redis) if j]
    assert sorted(j.args[0] for j in ran if j.func_name == "webhooks.inbox.process_inbox") == [ids[0], ids[BATCH]]
    assert default.count == 0


@POSTGRESQL
def test_a_pay_notification_is_applied_alone_never_in_a_batch(settings, enqueued, monkeypatch):
    import json

    from webhooks.crypto import parse_body
    from webhooks.inbox import inbox_scope, process_inbox, store

    # Pay's notifications lock group-buy rows in the order they come: a batch of them deadlocked with joins.
    applied_with: dict[int, set[int]] = {}
    current: list[int] = []

    def recorder(session, ev):
        applied_with[ev.inbox_id] = set(current)
        current.append(ev.inbox_id)

    pay_kind = ("wechatpay", "notification", "transaction.success", "")
    monkeypatch.setitem(dispatch.HANDLERS, KIND, recorder)
    monkeypatch.setitem(dispatch.HANDLERS, pay_kind, recorder)
    # given a Pay notification waiting between two customers' contact events
    first = store_all([_edit(0, 0)])[0]
    notes = []
    for n in range(2):
        text = json.dumps({"MsgType": "notification", "Event": "transaction.success", "resource": {"n": n}})
        with inbox_scope() as s:
            notes.append(store(s, "wechatpay", text, parse_body(text)[0]).inbox_id)
    last = store_all([_edit(1, 0)])[0]
    # when the first contact event's job runs, then it takes the other contact event along, not the notifications
    current.clear()
    assert process_inbox(first) == "done"
    assert set(applied_with) == {first, last}
    # and a notification's own job applies it and takes nothing along (not even the other notification)
    for note in notes:
        current.clear()
        assert process_inbox(note) == "done"
        assert applied_with[note] == set()
    assert [r.status for r in inbox_rows()] == ["done"] * 4


@POSTGRESQL
def test_an_enqueue_that_fails_at_the_acknowledgement_does_not_keep_the_others_from_going(settings, monkeypatch):
    from config.queue import using
    from webhooks.group_store import store_at_once
    from webhooks.inbox import process_inbox

    class FailingFirst:  # a queue that refuses the event's job and takes the rest
        def __init__(self):
            self.jobs = []

        def dispatch(self, job):
            if job.func is process_inbox:
                raise ConnectionError("Redis went away")
            self.jobs.append(job)

    def welcome(inbox_id):  # stands in for the welcome message's job
        pass

    with using(FailingFirst()) as queue:
        stored = store_at_once("wecom", _edit(0, 0), {"MsgType": "event"}, [(welcome, "fast")])
    # then the event is stored (the sweeper finds it), and the welcome job went all the same
    assert stored.created and [(j.func, j.args, j.queue) for j in queue.jobs] == [(welcome, (stored.inbox_id,), "fast")]
    assert [r.status for r in inbox_rows()] == ["received"]


SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@SQLITE
def test_on_sqlite_a_job_takes_waiting_events_along_while_the_write_lock_is_young(settings, enqueued, monkeypatch):
    from webhooks import inbox
    from webhooks.inbox import process_inbox

    # given five waiting events of five customers, on the embedded database
    ids = store_all([_edit(c, 0) for c in range(5)])
    calls = Counter()
    monkeypatch.setitem(dispatch.HANDLERS, KIND, lambda session, ev: calls.update([ev.inbox_id]))
    # when the first one's job runs
    assert process_inbox(ids[0]) == "done"
    # then every one is applied once and done, and their own jobs find nothing left to do
    assert calls == Counter(ids)
    assert {r.status for r in inbox_rows()} == {"done"}
    assert [process_inbox(i) for i in ids[1:]] == ["done"] * 4
    assert calls == Counter(ids)
    # and once the write lock has been held for its time, the rest is left to their own jobs
    later = store_all([_edit(c, 1) for c in range(3)])
    monkeypatch.setattr(inbox, "SQLITE_BATCH_SECONDS", 0.0)
    assert process_inbox(later[0]) == "done"
    assert {r.id: r.status for r in inbox_rows() if r.id in later} == {later[0]: "done", later[1]: "received",
                                                                       later[2]: "received"}
    assert [process_inbox(i) for i in later[1:]] == ["done", "done"]
    assert calls == Counter(ids + later)


@POSTGRESQL
def test_a_batch_takes_no_savepoint_an_event_until_one_fails_then_is_applied_again_with_them(settings, enqueued,
                                                                                             monkeypatch):
    from sqlalchemy import event, select

    from config.database import get_engine, session_scope
    from config.queue import enqueue
    from membership.models import TimelineEvent
    from membership.timeline import record_event
    from webhooks.inbox import process_inbox

    member_id = _a_member()
    failing: set[int] = set()

    def handler(session, ev):  # writes a row and queues a job once its transaction commits; fails when told to
        record_event(session, member_id, "contact.edited", {"inbox": ev.inbox_id})
        enqueue(_after_commit_job, ev.inbox_id, session=session)
        if ev.inbox_id in failing:
            raise RuntimeError("WeCom busy")

    monkeypatch.setitem(dispatch.HANDLERS, KIND, handler)
    savepoints = []
    listener = lambda conn, cursor, statement, *rest: savepoints.append(statement)  # noqa: E731
    listen = lambda: event.listen(get_engine(), "before_cursor_execute", listener)  # noqa: E731

    def written() -> Counter:
        with session_scope() as s:
            return Counter(e.data["inbox"] for e in s.scalars(select(TimelineEvent)))

    # given three waiting events; when a job applies them, none failing
    calm = store_all([_edit(c, 1) for c in range(3)])
    listen()
    try:
        assert process_inbox(calm[0]) == "done"
        # then each is written once, and no savepoint was taken for them
        assert written() == Counter({i: 1 for i in calm})
        assert not [s for s in savepoints if "SAVEPOINT" in s]
        # given three more, the middle one failing; when a job applies them
        stormy = store_all([_edit(c, 2) for c in range(3)])
        failing.add(stormy[1])
        assert process_inbox(stormy[0]) == "done"
    finally:
        event.remove(get_engine(), "before_cursor_execute", listener)
    # then the first try was rolled back whole, and the batch applied again one savepoint an event: every event
    # that succeeded is written once, the failing one not at all, and it waits for its own job
    assert written() == Counter({**{i: 1 for i in calm}, stormy[0]: 1, stormy[2]: 1})
    # and the jobs the rolled-back try queued were dropped with it: one for each event of the careful pass (whose
    # failed savepoint's job still goes, as config.database.after_commit says: jobs cope with missing rows)
    assert Counter(args[0] for name, args, _ in enqueued if name == "_after_commit_job") == Counter(
        [*calm, *stormy])
    assert [s for s in savepoints if s.startswith("SAVEPOINT")]
    rows = {r.id: r for r in inbox_rows()}
    assert [rows[i].status for i in stormy] == ["done", "received", "done"]


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_an_event_an_earlier_attempt_applied_is_settled_in_the_batch_without_running_again(settings, enqueued,
                                                                                          monkeypatch):
    from config.database import session_scope
    from config.types import utcnow
    from webhooks.inbox import process_inbox
    from webhooks.models import InboxApplied

    calls = Counter()
    monkeypatch.setitem(dispatch.HANDLERS, KIND, lambda session, ev: calls.update([ev.inbox_id]))
    # given three waiting events, the middle one's effects committed by an earlier attempt under its mark
    first, applied, last = store_all([_edit(c, 3) for c in range(3)])
    row = {r.id: r for r in inbox_rows()}[applied]
    with session_scope() as s:
        s.add(InboxApplied(content_key=row.content_key, inbox_id=applied, applied_at=utcnow()))
    # when a job applies the batch
    assert process_inbox(first) == "done"
    # then the other two ran once, the applied one not again, and all three are done
    assert calls == Counter({first: 1, last: 1})
    assert [r.status for r in inbox_rows()] == ["done"] * 3


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_job_out_of_time_in_an_event_taken_along_fails_at_once_and_applies_nothing(settings, enqueued, monkeypatch):
    from rq.timeouts import JobTimeoutException

    from webhooks.inbox import process_inbox

    calls = Counter()
    first, late, last = store_all([_edit(c, 4) for c in range(3)])

    def handler(session, ev):
        calls[ev.inbox_id] += 1
        if ev.inbox_id == late:
            raise JobTimeoutException("Task exceeded maximum timeout value (180 seconds)")

    monkeypatch.setitem(dispatch.HANDLERS, KIND, handler)
    # when the job's time runs out while it applies an event taken along
    with pytest.raises(JobTimeoutException):
        process_inbox(first)
    # then nothing more was tried, nothing is applied, and the job's own event records the failure for its retry
    assert calls == Counter({first: 1, late: 1})
    rows = {r.id: r for r in inbox_rows()}
    assert [rows[i].status for i in (first, late, last)] == ["received"] * 3
    assert rows[first].attempts == 1 and "JobTimeoutException" in rows[first].error


@POSTGRESQL
def test_a_batch_sends_its_counter_bumps_at_its_end_and_when_they_fail_is_applied_again_carefully(settings, enqueued,
                                                                                                monkeypatch):
    from sqlalchemy import select

    import webhooks.inbox as inbox
    from config.database import session_scope
    from membership.models import TimelineEvent, Trait
    from membership.timeline import record_event

    member_id = _a_member()
    monkeypatch.setitem(dispatch.HANDLERS, KIND, lambda session, ev: record_event(
        session, member_id, "contact.edited", {"inbox": ev.inbox_id}))
    sent, real = [], inbox.flush_behind

    def flush_once_failing(session) -> None:  # the first batch's held bumps cannot be sent (a deadlock, say)
        held = session.info["write_behind"]
        sent.append(len(held.log) - held.sent)
        if len(sent) == 1:
            raise RuntimeError("deadlock detected")
        real(session)

    monkeypatch.setattr(inbox, "flush_behind", flush_once_failing)
    # given three waiting events of one member; when a job applies them
    ids = store_all([_edit(c, 4) for c in range(3)])
    assert inbox.process_inbox(ids[0]) == "done"
    # then the optimistic pass held every bump (four derived traits and a day count an event) for its end, and
    # when sending them failed, the batch was applied again without holding any: nothing is counted twice
    assert sent == [15]
    with session_scope() as s:
        assert sorted(e.data["inbox"] for e in s.scalars(select(TimelineEvent))) == ids
        counted = s.scalar(select(Trait.number_value).where(Trait.member_id == member_id,
                                                           Trait.key == "count.contact.edited"))
    assert counted == 3
    assert [r.status for r in inbox_rows()] == ["done"] * 3
