"""Failures, retries, the sweeper, the inbox API and replay; channel codes and OA QR codes."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from config.database import session_scope
from config.types import utcnow
from webhooks.inbox import inbox_scope
from tests.webhooks.conftest import ADMIN, fixture_text, inbox_rows, wecom_creds, wecom_post

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")


def test_failed_handling_retries_then_ends_failed_listed_and_replayable(client, enqueued, fake_wecom, monkeypatch):
    from webhooks.jobs import MAX_ATTEMPTS, process_inbox

    # given a handler that keeps failing
    monkeypatch.setattr(fake_wecom, "get_external_contact", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    wecom_post(client, wecom_creds(), ADD)
    [row] = inbox_rows()
    # when every attempt the queue makes fails
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with pytest.raises(RuntimeError):
            process_inbox(row.id)
        [row] = inbox_rows()
        assert row.attempts == attempt and "boom" in row.error
        assert row.status == ("failed" if attempt == MAX_ATTEMPTS else "received")
        if attempt < MAX_ATTEMPTS:
            assert row.due_at > utcnow()  # backing off: the sweeper leaves it to the queue's retry
    # then it is listed as failed
    listed = client.get("/api/v1/inbox", params={"status": "failed"}, headers=ADMIN).json()["items"]
    assert [(i["id"], i["status"], i["attempts"]) for i in listed] == [(row.id, "failed", MAX_ATTEMPTS)]
    # and after the cause is fixed, a replay handles it
    monkeypatch.undo()
    monkeypatch.setattr("bot.clients.wecom_client", lambda: fake_wecom)
    for where in ("webhooks.inbox", "webhooks.jobs"):
        monkeypatch.setattr(f"{where}.enqueue", lambda func, *args, **kw: enqueued.append((func.__name__, args)))
    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    r = client.post(f"/api/v1/inbox/{row.id}/replay", headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "received"
    assert ("process_inbox", (row.id,)) in enqueued
    assert process_inbox(row.id) == "done"
    assert client.get("/api/v1/inbox", params={"status": "failed"}, headers=ADMIN).json()["items"] == []


def test_replaying_a_done_event_is_refused(client, enqueued, fake_wecom):
    from webhooks.jobs import process_inbox

    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    wecom_post(client, wecom_creds(), ADD)
    [row] = inbox_rows()
    process_inbox(row.id)
    assert client.post(f"/api/v1/inbox/{row.id}/replay", headers=ADMIN).status_code == 409
    assert client.post("/api/v1/inbox/999/replay", headers=ADMIN).status_code == 404


def test_the_inbox_api_needs_the_admin_role(client):
    assert client.get("/api/v1/inbox").status_code == 401


def test_the_sweeper_requeues_only_events_whose_job_was_lost(client, enqueued):
    from webhooks.jobs import sweep_inbox
    from webhooks.models import InboxEvent

    # given two received events: one stuck for minutes (Redis was down), one just in
    wecom_post(client, wecom_creds(), ADD)
    wecom_post(client, wecom_creds(), ADD.replace("wmEXT0001", "wmEXT0003"))
    old, new = inbox_rows()
    with inbox_scope() as s:
        s.execute(update(InboxEvent).where(InboxEvent.id == old.id).values(due_at=utcnow() - timedelta(minutes=5)))
    enqueued.clear()
    # when the sweeper runs twice in a row
    assert sweep_inbox() == 1
    assert sweep_inbox() == 0
    # then only the stuck one was enqueued, once
    assert enqueued == [("process_inbox", (old.id,), "default")]
    # and it is swept again only after a backoff, so a long queue is not multiplied every minute
    with inbox_scope() as s:
        due = s.get(InboxEvent, old.id).due_at
    assert due - utcnow() > timedelta(minutes=8)


def test_the_schedules_enqueue_the_sweeper_and_the_purge_without_running_them(monkeypatch):
    import config.queue
    from webhooks.jobs import sweep_inbox
    from webhooks.retention import purge_inbox_payloads
    from webhooks.scheduled import SCHEDULES, enqueue_inbox_purge, enqueue_sweep

    queued = []
    monkeypatch.setattr(config.queue, "_dispatch",
                        lambda func, args, queue, retries: queued.append((func, args, queue, retries)))
    # given the intake's schedule table: the sweeper every minute, the payload purge once a day
    assert SCHEDULES == [(enqueue_sweep, {"trigger": "interval", "seconds": 60}),
                         (enqueue_inbox_purge, {"trigger": "cron", "hour": 4, "minute": 20})]
    # when its entries fire
    enqueue_sweep()
    enqueue_inbox_purge()
    # then each job is queued once on `low` (the next minute's sweep is the sweeper's retry)
    assert queued == [(sweep_inbox, (), "low", 0), (purge_inbox_payloads, (), "low", 1)]


def test_a_channel_code_is_created_in_wecom_with_a_siyu_state(client, fake_wecom):
    from webhooks.models import ChannelCode

    client.post("/api/v1/stores", json={"code": "S001", "name": "静安店"}, headers=ADMIN)
    client.post("/api/v1/staff", json={"userid": "zhangsan", "name": "张三", "store": "S001"}, headers=ADMIN)
    # when a marketer asks for a code with a tag and a welcome
    body = {"name": "静安店门口", "store": "S001", "staff": ["zhangsan"], "tags": ["到店"], "welcome": {"text": "欢迎"}}
    r = client.post("/api/v1/channel-codes", json=body, headers=ADMIN)
    # then WeCom made the code with that state, the tag exists on WeCom, and the code is stored
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["state"].startswith("sy") and len(out["state"]) <= 30 and out["qr_code"] and out["config_id"]
    [(_, way)] = fake_wecom.named("add_contact_way")
    assert way["state"] == out["state"] and way["user"] == ["zhangsan"] and way["type"] == 1
    assert fake_wecom.named("add_corp_tag") == [("add_corp_tag", ("到店",))]
    with session_scope() as s:
        code = s.get(ChannelCode, out["id"])
        assert code.welcome_text == "欢迎" and len(code.tag_ids) == 1
    # and an unknown staff member is a 404
    bad = client.post("/api/v1/channel-codes", json={**body, "staff": ["nobody"]}, headers=ADMIN)
    assert bad.status_code == 404


def test_an_oa_qrcode_carries_a_siyu_scene(client, fake_oa):
    client.post("/api/v1/stores", json={"code": "S001", "name": "静安店"}, headers=ADMIN)
    r = client.post("/api/v1/oa-qrcodes", json={"store": "S001", "name": "海报"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["ticket"] == "TICKET-" + r.json()["scene"]
    assert fake_oa.calls == [("create_qrcode", r.json()["scene"], None)]


def test_an_auto_reply_needs_a_reply_and_a_known_match_mode(client):
    assert client.post("/api/v1/auto-replies", json={"keywords": ["a"]}, headers=ADMIN).status_code == 422
    assert client.post("/api/v1/auto-replies", json={"keywords": ["a"], "match": "regex", "reply_text": "x"},
                       headers=ADMIN).status_code == 422
