"""change_external_contact handlers: members, relations, channel codes, tags, welcome, losses, out of order."""
from __future__ import annotations

import pytest

from bot.errors import BusyError, TransportError
from sqlalchemy import func, select

from config.database import session_scope
from membership.identity import IdentityIn, bind
from membership.models import Member, MemberTag, Relation, Staff, Store, Tag, TimelineEvent
from tests.webhooks.conftest import fixture_text, handle, inbox_rows, wecom_creds, wecom_post

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")
EDIT = fixture_text("wecom", "event__change_external_contact__edit_external_contact.xml")
DEL = fixture_text("wecom", "event__change_external_contact__del_external_contact.xml")
DEL_TRANSFER = fixture_text("wecom", "event__change_external_contact__del_external_contact@transfer.xml")
LOST = fixture_text("wecom", "event__change_external_contact__del_follow_user.xml")
FAIL = fixture_text("wecom", "event__change_external_contact__transfer_fail.xml")


@pytest.fixture
def shop(settings):
    """A store S001 with staff zhangsan and store manager wangwu, and a channel code with a tag and welcome."""
    from webhooks.models import ChannelCode

    with session_scope() as s:
        store = Store(code="S001", name="静安店")
        s.add(store)
        s.flush()
        s.add_all([Staff(userid="zhangsan", name="张三", store_id=store.id),
                   Staff(userid="wangwu", name="王五", store_id=store.id, role="store_manager")])
        tag = Tag(name="扫码新客", group_name="渠道", wecom_tag_id="etNEW")
        s.add(tag)
        s.flush()
        s.add(ChannelCode(name="门店码", state="STATE", store_id=store.id, staff_userids=["zhangsan"],
                          tag_ids=[tag.id], welcome_text="欢迎光临"))
    return store


def _count(model, *where) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _events(type_: str) -> list[TimelineEvent]:
    with session_scope() as s:
        return list(s.scalars(select(TimelineEvent).where(TimelineEvent.type == type_)))


def test_add_through_a_channel_code_creates_member_relation_store_tags(shop, enqueued, fake_wecom):
    # given a customer who added zhangsan through the code with state STATE
    fake_wecom.add_contact("wmEXT0001", "zhangsan", name="李雷", unionid="uLILEI", state="STATE")
    # when the add event is handled
    row = handle("wecom", ADD)
    # then one member with both identities, home store S001, an active relation carrying the code
    assert row.status == "done"
    with session_scope() as s:
        [member] = s.scalars(select(Member)).all()
        assert member.name == "李雷" and member.store_id == shop.id
        rel = s.scalar(select(Relation))
        assert rel.status == "active" and rel.state == "STATE" and rel.channel_code_id is not None
        assert {t.name for t in s.scalars(select(Tag).join(MemberTag, MemberTag.tag_id == Tag.id))} == {"扫码新客"}
    # and the code's tag was marked on WeCom once, and contact.added written once
    assert fake_wecom.named("mark_tag") == [("mark_tag", "zhangsan", "wmEXT0001", ("etNEW",), ())]
    assert len(_events("contact.added")) == 1


def test_the_same_add_handled_again_changes_nothing(shop, enqueued, fake_wecom):
    from webhooks.inbox import inbox_scope, requeue
    from webhooks.inbox import process_inbox

    fake_wecom.add_contact("wmEXT0001", "zhangsan", state="STATE")
    row = handle("wecom", ADD)
    # when the job runs twice more (a retried job, a replay)
    process_inbox(row.id)
    with inbox_scope() as s:
        requeue(s, row.id)
    process_inbox(row.id)
    # then still one member, one relation, one tag, one contact.added, one mark_tag
    assert _count(Member) == 1 and _count(Relation) == 1 and _count(MemberTag) == 1
    assert len(_events("contact.added")) == 1 and len(_events("tag.added")) == 1
    assert len(fake_wecom.named("mark_tag")) == 1


def test_an_add_sharing_a_unionid_joins_the_oa_follower(shop, enqueued, fake_wecom):
    # given an OA follower with unionid uHAN
    with session_scope() as s:
        follower = bind(s, [IdentityIn("oa_openid", "oHAN", scope="wxoa"), IdentityIn("unionid", "uHAN")]).member
    fake_wecom.add_contact("wmEXT0001", "zhangsan", unionid="uHAN", state="STATE")
    # when the same person adds zhangsan on WeCom
    handle("wecom", ADD)
    # then no new member: the follower now carries the external contact and the relation
    assert _count(Member) == 1
    with session_scope() as s:
        assert s.scalar(select(Relation.member_id)) == follower.id


def test_an_edit_before_its_add_ends_with_one_relation_and_one_welcome_job(shop, client, enqueued, fake_wecom):
    from webhooks.inbox import process_inbox
    from webhooks.models import InboxApplied
    from webhooks.wecom.welcome import send_welcome

    fake_wecom.add_contact("wmEXT0001", "zhangsan", state="STATE", remark="老客户")
    # given WeCom delivers the edit first, then the add (which carries the welcome code)
    assert wecom_post(client, wecom_creds(), EDIT).status_code == 200
    assert wecom_post(client, wecom_creds(), ADD).status_code == 200
    edit, add = inbox_rows()
    # then one welcome job was queued, the add's, on the fast queue
    assert [c for c in enqueued if c[0] == "send_welcome"] == [("send_welcome", (add.id,), "fast")]
    # when the workers handle them in that order
    assert [process_inbox(edit.id), process_inbox(add.id)] == ["done", "done"]
    # then both handlers ran (each read the contact from WeCom and committed its effects under its mark)
    assert fake_wecom.named("get_external_contact") == [("get_external_contact", "wmEXT0001")] * 2
    with session_scope() as s:
        assert set(s.scalars(select(InboxApplied.inbox_id))) == {edit.id, add.id}
    # and they left one relation with the remark, contact.added once, contact.edited once
    assert _count(Relation) == 1
    with session_scope() as s:
        assert s.scalar(select(Relation.remark)) == "老客户"
    assert len(_events("contact.added")) == 1 and len(_events("contact.edited")) == 1
    # and the welcome job sends the code's text once
    assert send_welcome(add.id) == "sent" and len(fake_wecom.named("send_welcome_msg")) == 1


def test_an_edit_mirrors_tags_added_and_removed_in_wecom(shop, enqueued, fake_wecom):
    fake_wecom.add_contact("wmEXT0001", "zhangsan", tags=[("兴趣", "咖啡", "etCOFFEE")])
    handle("wecom", ADD)
    # given the staff member swaps 咖啡 for 茶 in WeCom, when the edit event is handled
    fake_wecom.add_contact("wmEXT0001", "zhangsan", tags=[("兴趣", "茶", "etTEA"), ("渠道", "扫码新客", "etNEW")])
    handle("wecom", EDIT)
    # then the member carries 茶 and no longer 咖啡
    with session_scope() as s:
        names = set(s.scalars(select(Tag.name).join(MemberTag, MemberTag.tag_id == Tag.id)))
    assert names == {"茶", "扫码新客"}
    assert [e.data["tag"] for e in _events("tag.removed")] == ["咖啡"]


def test_a_delete_before_its_add_leaves_no_active_relation(shop, enqueued, fake_wecom):
    # given WeCom says the customer no longer follows zhangsan (the delete happened after the add)
    fake_wecom.add_contact("wmEXT0001", "lisi")
    # when the delete arrives first and the add after it
    handle("wecom", DEL)
    handle("wecom", ADD)
    # then there is no active relation with zhangsan
    assert _count(Relation, Relation.status == "active") == 0


def test_staff_deleting_a_customer_ends_the_relation(shop, enqueued, fake_wecom):
    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    handle("wecom", ADD)
    handle("wecom", DEL)
    with session_scope() as s:
        assert s.scalar(select(Relation.status)) == "removed_by_staff"
    assert len(_events("contact.removed_by_staff")) == 1


def test_a_transfer_source_is_recorded_as_a_transfer(shop, enqueued, fake_wecom):
    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    handle("wecom", ADD)
    handle("wecom", DEL_TRANSFER)
    with session_scope() as s:
        assert s.scalar(select(Relation.status)) == "transferred"
    assert len(_events("contact.transferred")) == 1 and _events("contact.removed_by_staff") == []


def test_a_customer_deleting_staff_is_a_loss_with_an_alert_to_staff_and_manager(shop, enqueued, fake_wecom):
    from webhooks.wecom.alerts import loss_alert

    fake_wecom.add_contact("wmEXT0001", "zhangsan", name="韩梅梅")
    handle("wecom", ADD)
    # when the customer deletes zhangsan (delivered twice)
    row = handle("wecom", LOST)
    handle("wecom", LOST)
    # then the relation is lost, contact.lost written once, one alert job queued
    with session_scope() as s:
        assert s.scalar(select(Relation.status)) == "lost"
    assert len(_events("contact.lost")) == 1
    alerts = [c for c in enqueued if c[0] == "send_loss_alert"]
    assert alerts == [("send_loss_alert", (row.id,), "default")]
    # and the alert goes to zhangsan and the store manager wangwu
    loss_alert(row.id)
    [(_, body)] = fake_wecom.named("send_message")
    assert set(body["touser"].split("|")) == {"zhangsan", "wangwu"} and "韩梅梅" in body["text"]["content"]


def test_transfer_fail_is_recorded_on_the_customer(shop, enqueued, fake_wecom):
    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    handle("wecom", ADD)
    handle("wecom", FAIL)
    [ev] = _events("contact.transfer_failed")
    assert ev.data == {"staff": "lisi", "reason": "customer_refused"}


def test_the_welcome_is_sent_once_with_the_codes_text(shop, enqueued, fake_wecom):
    from webhooks.wecom.welcome import send_welcome

    row = handle("wecom", ADD)
    # when the welcome job runs twice
    assert send_welcome(row.id) == "sent"
    assert send_welcome(row.id) == "already sent"
    # then WeCom got one welcome with the code's text
    assert fake_wecom.named("send_welcome_msg") == [("send_welcome_msg", "WELCOMECODE0001", "欢迎光临")]


def test_a_welcome_that_failed_is_tried_again(shop, enqueued, fake_wecom, monkeypatch):
    from webhooks.wecom.welcome import send_welcome

    row = handle("wecom", ADD)
    calls = []

    def flaky(code, text=None, attachments=()):
        calls.append(code)
        if len(calls) == 1:
            raise BusyError(-1, "system busy", "externalcontact/send_welcome_msg")
        return {"errcode": 0}

    # given a first attempt that WeCom answered with an error (so nothing went out)
    monkeypatch.setattr(fake_wecom, "send_welcome_msg", flaky)
    with pytest.raises(BusyError):
        send_welcome(row.id)
    # then the retry sends it
    assert send_welcome(row.id) == "sent" and len(calls) == 2
    assert send_welcome(row.id) == "already sent" and len(calls) == 2


def test_a_send_whose_outcome_is_unknown_is_never_repeated(shop, enqueued, fake_wecom, monkeypatch):
    from webhooks.wecom.welcome import send_welcome
    from bot.models import OutboundSend

    row = handle("wecom", ADD)
    calls = []

    def timeout(code, text=None, attachments=()):
        calls.append(code)
        raise TransportError(None, "ReadTimeout", "externalcontact/send_welcome_msg")

    # given a send that timed out (WeCom may have delivered it)
    monkeypatch.setattr(fake_wecom, "send_welcome_msg", timeout)
    assert send_welcome(row.id) == "unknown"
    # when the job runs again, then nothing is sent twice
    assert send_welcome(row.id) == "already sent"
    assert len(calls) == 1
    with session_scope() as s:
        assert s.scalar(select(OutboundSend.status)) == "unknown"


def _age_inbox_row(inbox_id: int, seconds: int) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from config.types import utcnow
    from webhooks.inbox import inbox_scope
    from webhooks.models import InboxEvent

    with inbox_scope() as s:
        s.execute(update(InboxEvent).where(InboxEvent.id == inbox_id)
                  .values(received_at=utcnow() - timedelta(seconds=seconds)))


def test_a_welcome_job_that_starts_after_the_codes_20_seconds_does_not_call_wecom(shop, enqueued, fake_wecom):
    from webhooks.wecom.welcome import send_welcome
    from bot.models import OutboundSend

    # given an add event received 21 seconds ago (the fast queue was backed up)
    row = handle("wecom", ADD)
    _age_inbox_row(row.id, 21)
    # when its welcome job finally runs
    assert send_welcome(row.id) == "expired"
    # then WeCom was not asked to use the dead code, and the outbound_sends row says why
    assert fake_wecom.named("send_welcome_msg") == []
    with session_scope() as s:
        sent = s.scalar(select(OutboundSend))
        assert (sent.status, sent.error) == ("skipped", "welcome_code expired before it was used")
    assert send_welcome(row.id) == "already sent"


def test_a_failed_welcome_is_not_retried_once_its_code_expired(shop, enqueued, fake_wecom, monkeypatch):
    from webhooks.wecom.welcome import send_welcome
    from bot.models import OutboundSend

    row = handle("wecom", ADD)
    calls = []

    def busy(code, text=None, attachments=()):
        calls.append(code)
        raise BusyError(-1, "system busy", "externalcontact/send_welcome_msg")

    monkeypatch.setattr(fake_wecom, "send_welcome_msg", busy)
    # given a first attempt that failed inside the 20 s
    with pytest.raises(BusyError):
        send_welcome(row.id)
    # when the queue's 30-second retry runs
    _age_inbox_row(row.id, 30)
    assert send_welcome(row.id) == "expired"
    # then only the first attempt reached WeCom, and the earlier error is kept
    assert len(calls) == 1
    with session_scope() as s:
        sent = s.scalar(select(OutboundSend))
        assert sent.status == "skipped" and "busy" in sent.error
