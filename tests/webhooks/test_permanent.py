"""Events that can never be handled fail once, visibly, and stay replayable; transient errors keep retrying."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError

from bot.errors import BusyError, PermanentAPIError, RateLimitedError, TransportError
from config.database import session_scope
from config.models import JobFailure
from config.queue import in_process_runner
from membership.exceptions import InvalidInput
from membership.models import Relation
from tests.webhooks.conftest import ADMIN, fixture_text, handle, inbox_rows, wecom_creds, wecom_post

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")
SUBSCRIBE = fixture_text("official_account", "event__subscribe.xml")
CREATE_TIME = "<CreateTime>1700000000</CreateTime>"


def _job_failures() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(JobFailure))


@pytest.fixture
def quick_retries(monkeypatch, settings):
    """The in-process runner's backoff shrunk, so a wrongly retried event shows all its attempts at once."""
    monkeypatch.setattr(in_process_runner(), "retry_scale", 0.001)


@pytest.mark.parametrize("create_time", ["99999999999999", "100000000000000000", "100000000000", "-5", "soon"])
def test_a_corrupt_create_time_fails_once_without_retries_and_stays_replayable(
        client, drain, fake_wecom, quick_retries, create_time):
    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    # given an add event whose CreateTime is no time at all (overflowing, year 5138, before 2000, not a number)
    corrupt = ADD.replace(CREATE_TIME, f"<CreateTime>{create_time}</CreateTime>")
    # when WeCom delivers it and the in-process queue takes it
    assert wecom_post(client, wecom_creds(), corrupt).status_code == 200
    drain()
    # then it failed after one attempt with the reason stored, the queue retried nothing and recorded no job failure
    [row] = inbox_rows()
    assert (row.status, row.attempts) == ("failed", 1)
    assert "PermanentEventError" in row.error and "CreateTime" in row.error
    assert _job_failures() == 0
    # and nobody was called on its behalf (the check runs before the handler)
    assert fake_wecom.named("get_external_contact") == []
    # and it is listed as failed and can still be replayed (it fails again, once)
    listed = client.get("/api/v1/inbox", params={"status": "failed"}, headers=ADMIN).json()["items"]
    assert [i["id"] for i in listed] == [row.id]
    assert client.post(f"/api/v1/inbox/{row.id}/replay", headers=ADMIN).json()["status"] == "received"
    drain()
    [row] = inbox_rows()
    assert (row.status, row.attempts) == ("failed", 1) and _job_failures() == 0


@pytest.mark.parametrize("source,payload,field", [
    ("official_account", SUBSCRIBE.replace("<FromUserName><![CDATA[oFOLLOWER0001]]></FromUserName>", ""),
     "FromUserName"),
    ("official_account", SUBSCRIBE.replace("oFOLLOWER0001", "  "), "FromUserName"),
    ("wecom", ADD.replace("<ExternalUserID><![CDATA[wmEXT0001]]></ExternalUserID>", ""), "ExternalUserID"),
    ("wecom", ADD.replace("<UserID><![CDATA[zhangsan]]></UserID>", ""), "UserID"),
    ("wecom", fixture_text("wecom", "event__change_external_contact__del_follow_user.xml")
     .replace("<ExternalUserID><![CDATA[wmEXT0001]]></ExternalUserID>", ""), "ExternalUserID"),
    ("wecom", fixture_text("wecom", "event__change_external_chat__dismiss.xml").replace("ChatId>", "Chat>"), "ChatId"),
])
def test_an_event_missing_a_required_field_fails_once_without_retries(
        settings, drain, fake_wecom, fake_oa, quick_retries, source, payload, field):
    from webhooks.crypto import parse_body
    from webhooks.intake import accept

    # given an event without a field its handler cannot do without
    data, _ = parse_body(payload)
    assert not (data.get(field) or "").strip()
    # when it is stored and the in-process queue takes it
    accept(source, payload, data)
    drain()
    # then one attempt, failed, with the missing field named; no retry, no job failure, no API call
    [row] = inbox_rows()
    assert (row.status, row.attempts) == ("failed", 1)
    assert f"event has no {field}" in row.error
    assert _job_failures() == 0
    assert fake_wecom.calls == [] and fake_oa.calls == []


@pytest.mark.parametrize("error,permanent", [
    (InvalidInput("identity: empty oa_openid value"), True),
    (PermanentAPIError(40003, "invalid external userid", "externalcontact/mark_tag"), True),
    (DataError("INSERT …", {}, Exception("value too long for type character varying(120)")), True),
    (BusyError(-1, "system busy", "externalcontact/get"), False),
    (RateLimitedError(45009, "api freq out of limit", "externalcontact/get"), False),
    (TransportError(None, "ReadTimeout", "externalcontact/get"), False),
    (OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked")), False),
])
def test_permanent_errors_fail_once_and_transient_ones_go_back_to_the_queue(
        settings, enqueued, fake_wecom, monkeypatch, error, permanent):
    import webhooks.wecom.contacts as contacts

    def fails(session, ev, *, adding):
        raise error

    # given a handler that meets `error`
    monkeypatch.setattr(contacts, "sync_contact", fails)
    if permanent:
        # when it runs, then a permanent error is recorded once and not raised to the queue
        row = handle("wecom", ADD)
        assert (row.status, row.attempts) == ("failed", 1) and type(error).__name__ in row.error
    else:
        # when it runs, then a transient one is raised for the queue's retry and the row waits for it
        with pytest.raises(type(error)):
            handle("wecom", ADD)
        [row] = inbox_rows()
        assert (row.status, row.attempts) == ("received", 1) and row.due_at > row.received_at


def test_a_corrupt_createtime_from_the_api_falls_back_to_the_events_time(settings, enqueued, fake_wecom):
    # given a contact whose follow_user createtime, as the API answers it, is out of range
    contact = fake_wecom.add_contact("wmEXT0001", "zhangsan")
    contact["follow_user"][0]["createtime"] = 10 ** 17
    # when the add event is handled
    row = handle("wecom", ADD)
    # then it is done, and the relation carries the event's own CreateTime
    assert row.status == "done"
    with session_scope() as s:
        assert int(s.scalar(select(Relation.added_at)).timestamp()) == 1700000000


def test_a_chat_members_corrupt_join_time_is_not_a_failure(settings, enqueued, fake_wecom):
    from membership.models import GroupChatMember

    # given a chat whose member's join_time, as the API answers it, is too large for the platform
    fake_wecom.chats["wrCHAT0001"] = {"chat_id": "wrCHAT0001", "name": "群", "owner": "zhangsan", "member_list": [
        {"userid": "zhangsan", "type": 1}, {"userid": "wmEXT0001", "type": 2, "join_time": 10 ** 17}]}
    # when the create event is handled
    row = handle("wecom", fixture_text("wecom", "event__change_external_chat__create.xml"))
    # then it is done and the customer is in the chat
    assert row.status == "done"
    with session_scope() as s:
        assert s.scalar(select(GroupChatMember.active).where(GroupChatMember.userid == "wmEXT0001")) is True
