"""A batch reads its contacts from WeCom at once, right after it holds their locks, instead of one after another;
the first read of each is answered from there, a later one (after a handler of the batch changed the contact on
WeCom) afresh, and a read that failed is made again by its handler."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from config.database import session_scope
from membership.models import Relation
from tests.webhooks.conftest import fixture_text, inbox_rows, store_all
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


def test_with_read_ahead_set_to_1_each_read_is_made_by_its_handler(monkeypatch):
    from config.settings import get_settings

    monkeypatch.setenv("SIYU_WECHAT_READ_AHEAD", "1")
    get_settings.cache_clear()
    calls: list[str] = []
    reader = _reader(lambda key: calls.append(key) or key)
    reading = reads_ahead(reader)(lambda session, ev: None)
    try:
        with read_ahead([(reading, _Event("a")), (reading, _Event("b"))]) as kept:
            assert kept == 0 and calls == []
            assert ahead(reader, "a") == "a" and calls == ["a"]
    finally:
        get_settings.cache_clear()


def test_an_event_whose_key_cannot_be_told_is_left_to_its_handler_and_the_others_are_read():
    def key(ev):
        if ev.key == "bad":
            raise ValueError("no key")
        return ev.key

    reader = Reader("test.read", key, lambda k: k.upper())
    reading = reads_ahead(reader)(lambda session, ev: None)
    with read_ahead([(reading, _Event(k)) for k in ("a", "bad", "b")]) as kept:
        assert kept == 2 and ahead(reader, "a") == "A"


@POSTGRESQL
def test_a_batch_of_contact_events_reads_each_contact_once_ahead_and_again_after_its_own_change(
        settings, sandbox, enqueued, monkeypatch):
    import bot.wecom
    from bot.clients import wecom_client
    from membership.models import MemberTag, Staff, Store, Tag
    from webhooks.inbox import process_inbox
    from webhooks.models import ChannelCode

    # given a channel code that tags its customers on WeCom, twelve customers who added zhangsan through it, their
    # add events waiting, and an edit of the first after its add
    sandbox.add_staff("zhangsan")
    tag_id = wecom_client().add_corp_tag([{"name": "扫码新客"}], group_name="渠道")["tag_group"]["tag"][0]["id"]
    with session_scope() as s:
        store = Store(code="S001", name="静安店")
        s.add(store)
        s.flush()
        s.add(Staff(userid="zhangsan", name="张三", store_id=store.id))
        tag = Tag(name="扫码新客", group_name="渠道", wecom_tag_id=tag_id)
        s.add(tag)
        s.flush()
        s.add(ChannelCode(name="门店码", state="STATE", store_id=store.id, staff_userids=["zhangsan"],
                          tag_ids=[tag.id]))
    customers = [sandbox.add_external_contact("zhangsan", external_userid=f"wmAHEAD{i:02d}", name=f"客户{i}",
                                              state="STATE") for i in range(12)]
    adds = [ADD.replace("wmEXT0001", ext).replace("<CreateTime>1700000000</CreateTime>",
                                                   f"<CreateTime>{1700000000 + i}</CreateTime>")
            for i, ext in enumerate(customers)]
    ids = store_all(adds + [EDIT.replace("wmEXT0001", customers[0])])
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
        # each add marked the code's tag on WeCom; the edit's read saw it there, so the first keeps it too
        assert s.scalar(select(func.count()).select_from(MemberTag).where(MemberTag.tag_id == tag.id)) == 12
    assert tag_id in sandbox.follows["zhangsan"][customers[0]]["tag_id"]
    assert sandbox.calls["externalcontact/get"] == 13
    ahead_reads = sorted(ext for ext, name in threads if name.startswith("read-ahead"))
    assert ahead_reads == sorted(customers)
    assert [ext for ext, name in threads if not name.startswith("read-ahead")] == [customers[0]]
