"""The inbox beside the main database: acknowledgements never wait behind a job, and no event applies twice."""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from config.database import engine_for, session_scope
from config.queue import using
from membership.models import Relation, TimelineEvent
from tests.webhooks.conftest import ADMIN, fixture_text, handle, inbox_rows, wecom_creds, wecom_post

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")
BOUND = 10  # seconds a request may take before the test calls it stuck (a bound, not a measurement)
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the lock is SQLite's


@contextmanager
def main_write_lock(settings):
    """Hold the main SQLite database's write lock from another thread, as a long job does, until the block ends."""
    path = make_url(settings.database_url).database
    held, release, failed = threading.Event(), threading.Event(), []

    def hold():
        conn = sqlite3.connect(path, timeout=BOUND, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("BEGIN IMMEDIATE")  # what every Siyu transaction on SQLite begins with
            held.set()
            release.wait(60)
            conn.execute("ROLLBACK")
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            failed.append(exc)
            held.set()
        finally:
            conn.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(BOUND) and not failed, failed
    requests = Requests()
    try:
        yield requests
    finally:
        release.set()
        holder.join(BOUND)
        for thread in requests.threads:  # a request that waited for the lock finishes now
            thread.join(60)


def _main_is_locked(settings) -> bool:
    conn = sqlite3.connect(make_url(settings.database_url).database, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


class Requests:
    """Requests sent from threads while the lock is held; the caller joins each with a bound, so a regression
    fails instead of hanging, and `main_write_lock` waits for them once it let go, before the client closes."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def send(self, fn):
        """Run `fn` in a thread; (thread, results list)."""
        out: list = []
        thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread, out


@SQLITE_ONLY
def test_a_signed_callback_is_stored_and_answered_while_a_job_holds_the_main_write_lock(
        client, drain, fake_wecom, settings):
    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    # given a job holding the main database's write lock
    with main_write_lock(settings) as requests:
        # when WeCom delivers a signed callback
        thread, out = requests.send(lambda: wecom_post(client, wecom_creds(), ADD))
        thread.join(BOUND)
        # then it is answered 200 and stored while the lock is still held
        assert not thread.is_alive(), "the callback waited behind the main database's write lock"
        assert out[0].status_code == 200
        assert [r.status for r in inbox_rows()] == ["received"]
        assert _main_is_locked(settings)
    # and once the job lets go, the event is handled
    drain()
    assert [r.status for r in inbox_rows()] == ["done"]


@SQLITE_ONLY
def test_32_concurrent_callbacks_are_all_answered_200_while_a_job_holds_the_main_write_lock(
        client, drain, fake_wecom, settings):
    events = [ADD.replace("wmEXT0001", f"wmEXT1{i:03d}").replace("WELCOMECODE0001", f"WC{i:03d}") for i in range(32)]
    for i in range(32):
        fake_wecom.add_contact(f"wmEXT1{i:03d}", "zhangsan")
    # given a job holding the main database's write lock
    with main_write_lock(settings) as requests:
        # when 32 signed callbacks arrive at once
        sent = [requests.send(lambda event=event: wecom_post(client, wecom_creds(), event)) for event in events]
        for thread, _ in sent:
            thread.join(BOUND)
        # then every one is answered 200 and stored before the lock is released
        assert not any(thread.is_alive() for thread, _ in sent), "callbacks waited behind the main write lock"
        assert [out[0].status_code if out else "raised" for _, out in sent] == [200] * 32
        assert len(inbox_rows()) == 32
        assert _main_is_locked(settings)
    drain()
    assert {r.status for r in inbox_rows()} == {"done"}


@SQLITE_ONLY
def test_an_oa_keyword_reply_is_answered_while_a_job_holds_the_main_write_lock(plain_apps, client, enqueued, settings):
    from tests.webhooks.test_intake import _app_creds, _plain_query

    rule = {"keywords": ["营业"], "match": "contains", "reply_text": "每天 10:00–22:00 营业"}
    assert client.post("/api/v1/auto-replies", json=rule, headers=ADMIN).status_code == 201
    text_message = fixture_text("official_account", "text.xml")
    # given a job holding the main database's write lock
    with main_write_lock(settings) as requests:
        # when a follower's text matching the rule arrives
        thread, out = requests.send(lambda: client.post("/webhooks/official-account",
                                                     params=_plain_query(_app_creds("official_account")),
                                                     content=text_message))
        thread.join(BOUND)
        # then the passive reply (read from the main database) goes out without waiting for the lock
        assert not thread.is_alive(), "the passive reply waited behind the main database's write lock"
        assert out[0].status_code == 200 and "10:00–22:00" in out[0].text
        assert len(inbox_rows()) == 1


def test_an_event_whose_effects_committed_is_not_applied_again_by_a_second_copy(settings, enqueued, fake_wecom):
    from webhooks.inbox import inbox_scope
    from webhooks.inbox import process_inbox
    from webhooks.models import InboxEvent

    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    row = handle("wecom", ADD)
    assert row.status == "done"
    # given its row back at `received`, as when the job died between its commit and marking the row done,
    # or a second copy of the job read the row before the first marked it
    with inbox_scope() as s:
        s.execute(update(InboxEvent).where(InboxEvent.id == row.id).values(status="received"))
    # when that copy runs
    assert process_inbox(row.id) == "done"
    # then the handler did not run again: WeCom was asked once, one relation, one contact.added; the row is done
    assert len(fake_wecom.named("get_external_contact")) == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Relation)) == 1
        assert s.scalar(select(func.count()).select_from(TimelineEvent)
                        .where(TimelineEvent.type == "contact.added")) == 1
    assert [r.status for r in inbox_rows()] == ["done"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_concurrent_copies_of_a_job_apply_an_event_once_on_postgresql(settings, enqueued, fake_wecom, monkeypatch):
    from webhooks.crypto import parse_body
    from webhooks.inbox import inbox_scope, store
    from webhooks.inbox import process_inbox

    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    fetched, release = threading.Event(), threading.Event()
    real = fake_wecom.get_external_contact

    def slow(external_userid, cursor=None):
        fetched.set()
        release.wait(BOUND)  # the first copy stays inside its transaction until the second is seen waiting
        return real(external_userid, cursor)

    monkeypatch.setattr(fake_wecom, "get_external_contact", slow)
    data, _ = parse_body(ADD)
    with inbox_scope() as s:
        inbox_id = store(s, "wecom", ADD, data).inbox_id
    # given one copy of the job inside its handler
    copies = Requests()
    first, first_out = copies.send(lambda: process_inbox(inbox_id))
    assert fetched.wait(BOUND)
    # when a second copy starts meanwhile, and waits on the first's uncommitted mark
    second, second_out = copies.send(lambda: process_inbox(inbox_id))
    engine = engine_for(settings.database_url)

    def waiting() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND datname = current_database()")).scalar()

    for _ in range(BOUND * 20):  # until the second copy is seen blocked (bounded: it may also be too late)
        if waiting():
            break
        threading.Event().wait(0.05)
    release.set()
    first.join(BOUND)
    second.join(BOUND)
    # then both end with the row done, and the event was applied once
    assert first_out == ["done"] and second_out == ["done"]
    assert len(fake_wecom.named("get_external_contact")) == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Relation)) == 1
    [row] = inbox_rows()
    assert row.status == "done"


@SQLITE_ONLY
def test_inbox_rows_left_in_the_main_database_by_an_older_install_are_taken_over_once(settings):
    from webhooks.inbox import inbox_scope, reopen_inbox
    from webhooks.models import InboxEvent

    # given an install from before the split: an event waiting in the main database's webhook_inbox
    with session_scope() as s:
        s.add(InboxEvent(id=41, source="wecom", content_key="wecom:sha256:old", payload="<xml/>", data={},
                         status="received"))
    # when the inbox file is opened (twice: by two processes, or a restart)
    reopen_inbox()
    with inbox_scope() as s:
        first = [(r.id, r.content_key, r.status) for r in s.scalars(select(InboxEvent))]
    reopen_inbox()
    with inbox_scope() as s:
        second = [(r.id, r.content_key, r.status) for r in s.scalars(select(InboxEvent))]
    # then the event is in the inbox file, with its id, once
    assert first == second == [(41, "wecom:sha256:old", "received")]


@SQLITE_ONLY
def test_the_embedded_inbox_lives_in_its_own_file(settings):
    from webhooks.inbox import inbox_engine
    from webhooks.models import INBOX_TABLES

    # given embedded settings, when the inbox is opened, then it is var/inbox.db holding the intake's tables
    engine = inbox_engine()
    assert make_url(engine.url).database == str((settings.var_dir / "inbox.db").resolve())
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars())
    assert {t.name for t in INBOX_TABLES} <= names


@SQLITE_ONLY
def test_an_enqueue_that_hangs_does_not_hold_up_the_next_acknowledgement(settings):
    from webhooks.crypto import parse_body
    from webhooks.intake import accept

    hung, release, dispatched = threading.Event(), threading.Event(), []

    class Hanging:
        """A queue backend whose first enqueue hangs, as with a Redis that does not answer."""

        def dispatch(self, job):
            dispatched.append(job.args)
            if len(dispatched) == 1:
                hung.set()
                release.wait(BOUND * 3)

    other = ADD.replace("wmEXT0001", "wmEXT0002")
    requests = Requests()
    try:
        with using(Hanging()):
            # given a callback stored and committed whose enqueue hangs
            requests.send(lambda: accept("wecom", ADD, parse_body(ADD)[0]))
            assert hung.wait(BOUND)
            # when the next callback arrives
            second, out = requests.send(lambda: accept("wecom", other, parse_body(other)[0]))
            second.join(BOUND)
            # then it is stored and enqueued without waiting for the first one's enqueue
            assert not second.is_alive() and out and out[0].created
            assert len(inbox_rows()) == 2 and len(dispatched) == 2
    finally:
        release.set()
        for thread in requests.threads:
            thread.join(60)
