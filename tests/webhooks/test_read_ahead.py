"""A batch reads its contacts from WeCom at once, right after it holds their locks, instead of one after another;
the first read of each is answered from there, a later one (after a handler of the batch changed the contact on
WeCom) afresh, and a read that failed is made again by its handler."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from config.database import session_scope
from membership.models import Relation
from tests.webhooks.conftest import fixture_text, inbox_rows
from tests.webhooks.test_batches import _store
from webhooks.read_ahead import Reader, ahead, read_ahead, reads_ahead

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")
EDIT = fixture_text("wecom", "event__change_external_contact__edit_external_contact.xml")
POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # where batches read ahead


class _Event:
    def __init__(self, key: str):
        self.key = key


def _reader(read) -> Reader:
    return Reader("test.read", lambda ev: ev.key, read)


def test_the_reads_are_made_at_once_and_each_is_answered_once_from_there():
    # given reads of which the first three each wait for the other two to be in flight (made one after another,
    # the first would give up after 5 s and not be kept)
    together = threading.Barrier(3, timeout=5)
    made: list[str] = []

    def read(key: str) -> str:
        made.append(key)
        if len(made) <= 3:
            together.wait()
        return f"{key}@{len(made)}"

    reader = _reader(read)
    handler = reads_ahead(reader)(lambda session, ev: None)
    # when a batch of four events (two of key a) is read ahead
    with read_ahead([(handler, _Event(k)) for k in ("a", "b", "c", "a")]) as kept:
        # then three reads were made at once, and kept
        assert kept == 3 and sorted(made) == ["a", "b", "c"]
        assert ahead(reader, "a").startswith("a@") and ahead(reader, "b").startswith("b@")
        # and the second read of a is made afresh (its first handler may have changed it on WeCom)
        assert ahead(reader, "a") == "a@4"
    # outside the block every read is made now
    assert ahead(reader, "c") == "c@5"


def test_a_read_that_failed_ahead_is_made_again_by_its_handler_and_meets_its_error_there():
    calls: list[str] = []

    def read(key: str) -> str:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("WeCom said no")
        return key.upper()

    reader = _reader(read)
    handler = reads_ahead(reader)(lambda session, ev: None)
    with read_ahead([(handler, _Event("ok")), (handler, _Event("bad"))]) as kept:
        assert kept == 1
        assert ahead(reader, "ok") == "OK"
        with pytest.raises(RuntimeError, match="WeCom said no"):
            ahead(reader, "bad")
    assert sorted(calls) == ["bad", "bad", "ok"]


def test_a_lone_read_and_handlers_that_read_nothing_are_not_read_ahead():
    calls: list[str] = []
    reader = _reader(lambda key: calls.append(key) or key)
    reading = reads_ahead(reader)(lambda session, ev: None)
    with read_ahead([(reading, _Event("a")), (lambda session, ev: None, _Event("b"))]) as kept:
        assert kept == 0 and calls == []


@POSTGRESQL
def test_a_batch_of_contact_events_reads_each_contact_once_ahead_and_again_only_after_its_own_change(
        settings, sandbox, enqueued, monkeypatch):
    import bot.wecom
    from webhooks.inbox import process_inbox

    # given twelve customers who added zhangsan, their add events waiting, and an edit of the first after its add
    sandbox.add_staff("zhangsan")
    customers = [sandbox.add_external_contact("zhangsan", external_userid=f"wmAHEAD{i:02d}", name=f"客户{i}")
                 for i in range(12)]
    adds = [ADD.replace("wmEXT0001", ext).replace("<CreateTime>1700000000</CreateTime>",
                                                   f"<CreateTime>{1700000000 + i}</CreateTime>")
            for i, ext in enumerate(customers)]
    ids = _store(adds + [EDIT.replace("wmEXT0001", customers[0])])
    threads: list[tuple[str, str]] = []
    real = bot.wecom.WeComClient.get_external_contact

    def spied(self, external_userid, cursor=None):
        threads.append((external_userid, threading.current_thread().name))
        return real(self, external_userid, cursor)

    monkeypatch.setattr(bot.wecom.WeComClient, "get_external_contact", spied)
    # when one job applies its event and takes the others along
    assert process_inbox(ids[0]) == "done"
    # then every event is applied, each customer read ahead once, and the edit's read made afresh in the job
    assert [r.status for r in inbox_rows()] == ["done"] * len(ids)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Relation)) == 12
    assert sandbox.calls["externalcontact/get"] == 13
    ahead_reads = sorted(ext for ext, name in threads if name.startswith("read-ahead"))
    assert ahead_reads == sorted(customers)
    assert [ext for ext, name in threads if not name.startswith("read-ahead")] == [customers[0]]
