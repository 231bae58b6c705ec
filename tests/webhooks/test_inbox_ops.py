"""Failures, retries, the sweeper, the inbox API and replay; channel codes and OA QR codes."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from config.database import session_scope
from config.types import utcnow
from webhooks.inbox import MAX_ATTEMPTS, inbox_scope
from webhooks.models import InboxEvent
from tests.webhooks.conftest import ADMIN, fixture_text, inbox_rows, wecom_creds, wecom_post

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")


def test_failed_handling_retries_then_ends_failed_listed_and_replayable(client, enqueued, fake_wecom, monkeypatch):
    from webhooks.inbox import MAX_ATTEMPTS, process_inbox

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
    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    r = client.post(f"/api/v1/inbox/{row.id}/replay", headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "received"
    assert ("process_inbox", (row.id,), "default") in enqueued
    assert process_inbox(row.id) == "done"
    assert client.get("/api/v1/inbox", params={"status": "failed"}, headers=ADMIN).json()["items"] == []


def test_replaying_a_done_event_is_refused(client, enqueued, fake_wecom):
    from webhooks.inbox import process_inbox

    fake_wecom.add_contact("wmEXT0001", "zhangsan")
    wecom_post(client, wecom_creds(), ADD)
    [row] = inbox_rows()
    process_inbox(row.id)
    assert client.post(f"/api/v1/inbox/{row.id}/replay", headers=ADMIN).status_code == 409
    assert client.post("/api/v1/inbox/999/replay", headers=ADMIN).status_code == 404


def test_the_inbox_api_needs_the_admin_role(client, enqueued, fake_wecom):
    from webhooks.inbox import process_inbox

    # given a failed event, and tokens of every role below admin
    fake_wecom.get_external_contact = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom"))
    wecom_post(client, wecom_creds(), ADD)
    [row] = inbox_rows()
    with inbox_scope() as s:
        s.execute(update(InboxEvent).where(InboxEvent.id == row.id).values(attempts=MAX_ATTEMPTS - 1))
    with pytest.raises(RuntimeError):
        process_inbox(row.id)
    client.post("/api/v1/stores", json={"code": "S001", "name": "静安店"}, headers=ADMIN)
    client.post("/api/v1/staff", json={"userid": "zhangsan", "name": "张三", "store": "S001"}, headers=ADMIN)
    others = {}
    for role, scope in (("marketer", {}), ("store_manager", {"store": "S001"}), ("staff", {"staff": "zhangsan"})):
        made = client.post("/api/v1/tokens", json={"name": role, "role": role, **scope}, headers=ADMIN)
        others[role] = {"Authorization": f"Bearer {made.json()['token']}"}
    replay = f"/api/v1/inbox/{row.id}/replay"
    # when anybody but an admin lists the inbox or replays the event, then it is refused: 401 without a token,
    # 403 with the token of any other role
    assert client.get("/api/v1/inbox").status_code == 401 and client.post(replay).status_code == 401
    for role, headers in others.items():
        assert client.get("/api/v1/inbox", headers=headers).status_code == 403, role
        assert client.post(replay, headers=headers).status_code == 403, role
    # and nothing was replayed by them, while the admin sees the event and replays it
    assert [r.status for r in inbox_rows()] == ["failed"]
    assert enqueued.count(("process_inbox", (row.id,), "default")) == 1
    listed = client.get("/api/v1/inbox", headers=ADMIN)
    assert listed.status_code == 200 and [i["id"] for i in listed.json()["items"]] == [row.id]
    assert client.post(replay, headers=ADMIN).json()["status"] == "received"


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


def test_the_schedules_enqueue_the_sweeper_and_the_purge_without_running_them(client, enqueued):
    from apscheduler.schedulers.background import BackgroundScheduler

    from config.queue import recording
    from siyu.schedules import install
    from webhooks.models import InboxEvent

    # given an event stuck in `received` for minutes, and a finished one past the retention period
    wecom_post(client, wecom_creds(), ADD)
    wecom_post(client, wecom_creds(), ADD.replace("wmEXT0001", "wmEXT0003"))
    stuck, old = inbox_rows()
    with inbox_scope() as s:
        s.execute(update(InboxEvent).where(InboxEvent.id == stuck.id).values(due_at=utcnow() - timedelta(minutes=5)))
        s.execute(update(InboxEvent).where(InboxEvent.id == old.id)
                  .values(status="done", received_at=utcnow() - timedelta(days=31)))
    before = [(r.status, r.due_at, r.payload) for r in inbox_rows()]
    sched = BackgroundScheduler()
    install(sched)
    # when the installed sweep and purge entries fire
    with recording() as jobs:
        sched.get_job("webhooks.scheduled.enqueue_sweep").func()
        sched.get_job("webhooks.scheduled.enqueue_inbox_purge").func()
    # then each queued one job on `low` (the sweeper without retries: the next minute's sweep is its retry),
    # and neither did its work in the scheduler: the stuck row is not re-queued, the old payload is still there
    assert [(j.func.__name__, j.args, j.queue, j.retries) for j in jobs] == [
        ("sweep_inbox", (), "low", 0), ("purge_inbox_payloads", (), "low", 1)]
    assert [(r.status, r.due_at, r.payload) for r in inbox_rows()] == before
    # and the queued jobs, run by a worker, do that work
    enqueued.clear()
    for job in jobs:
        job.func(*job.args)
    assert enqueued == [("process_inbox", (stuck.id,), "default")]
    assert [r.payload for r in inbox_rows()] == [stuck.payload, ""]


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
