"""Reminders and progress notices: subscribe messages through the send ledger, grants and quiet hours respected."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.models import OutboundSend
from campaigns.bookings import notify, service
from config.database import session_scope
from config.queue import recording
from membership import consents
from membership.models import TimelineEvent
from tests.campaigns.bookings.helpers import at, login, tomorrow


def _booked(client, sandbox, service_code="eye-test", clock="10:00"):
    auth, member_id, openid = login(client, sandbox)
    with recording() as jobs:
        r = client.post("/mp/v1/bookings", headers=auth, json={
            "store": "S1", "service": service_code, "start": at(tomorrow(), clock).isoformat()})
    assert r.status_code == 201, r.text
    return r.json()["id"], member_id, openid, jobs


def _ledger(key: str) -> tuple[str, str | None]:
    with session_scope() as s:
        row = s.scalar(select(OutboundSend).where(OutboundSend.key == key))
        return row.status, row.error


def test_a_reminder_due_in_quiet_hours_moves_to_the_last_minute_before_them(settings):
    # given quiet hours 21:00–09:00 and an appointment at 10:00 with a two-hour lead (08:00: quiet)
    start = at(tomorrow(), "10:00")
    due = notify.reminder_due(start, timedelta(minutes=120), at(tomorrow(), "00:00") - timedelta(days=1))
    # then the reminder goes out at 20:59 the evening before
    assert due == at(tomorrow(), "20:59") - timedelta(days=1)
    # and one booked at 23:00 for 10:00 goes out as quiet hours end, at 09:00
    assert notify.reminder_due(start, timedelta(minutes=120), at(tomorrow(), "23:00") - timedelta(days=1)) == \
        at(tomorrow(), "09:00")


def test_a_granted_reminder_is_sent_once_and_uses_the_grant(client, tokens, sandbox, monkeypatch):
    bid, member_id, openid, jobs = _booked(client, sandbox)
    reminder = next(j for j in jobs if j.func is notify.send_reminder)
    with session_scope() as s:
        consents.grant(s, member_id=member_id, template_id="TPL-REMIND")
    sandbox.grant_subscribe(openid, "TPL-REMIND")
    monkeypatch.setattr(notify, "utcnow", lambda: at(tomorrow(), "09:30"))
    # when the reminder job runs (twice, as a retried job may)
    assert notify.send_reminder(*reminder.args) == "sent"
    assert notify.send_reminder(*reminder.args) == "already sent"
    # then one subscribe message went out, with the service, the local time and the store, and the grant is used
    [sent] = sandbox.mp_subscribe_sends
    assert sent["touser"] == openid and sent["template_id"] == "TPL-REMIND"
    assert sent["data"]["time2"]["value"] == f"{tomorrow():%Y-%m-%d} 10:00" and sent["page"].endswith(f"id={bid}")
    assert _ledger(notify.reminder_key(bid, at(tomorrow(), "10:00")))[0] == "sent"
    with session_scope() as s:
        assert consents.remaining(s, member_id=member_id, template_id="TPL-REMIND") == 0


def test_without_a_grant_nothing_is_sent_and_the_skip_is_recorded(client, tokens, sandbox, monkeypatch):
    bid, _, openid, jobs = _booked(client, sandbox)
    sandbox.grant_subscribe(openid, "TPL-REMIND")  # WeChat would accept it: Siyu still sends nothing ungranted
    monkeypatch.setattr(notify, "utcnow", lambda: at(tomorrow(), "09:30"))
    assert notify.send_reminder(bid, int(at(tomorrow(), "10:00").timestamp())) == "skipped"
    assert sandbox.mp_subscribe_sends == []
    status, error = _ledger(notify.reminder_key(bid, at(tomorrow(), "10:00")))
    assert status == "skipped" and "no subscribe grant" in error


def test_a_reminder_that_comes_due_in_quiet_hours_is_skipped_not_sent(client, tokens, sandbox, monkeypatch):
    bid, member_id, openid, _ = _booked(client, sandbox)
    with session_scope() as s:
        consents.grant(s, member_id=member_id, template_id="TPL-REMIND")
    monkeypatch.setattr(notify, "utcnow", lambda: at(tomorrow(), "07:00"))
    assert notify.send_reminder(bid, int(at(tomorrow(), "10:00").timestamp())) == "skipped"
    assert sandbox.mp_subscribe_sends == []
    assert "quiet hours" in _ledger(notify.reminder_key(bid, at(tomorrow(), "10:00")))[1]
    with session_scope() as s:  # the grant was not spent
        assert consents.remaining(s, member_id=member_id, template_id="TPL-REMIND") == 1


def test_a_cancelled_or_rescheduled_booking_gets_no_reminder_for_the_old_time(client, tokens, sandbox, monkeypatch):
    bid, member_id, _, _ = _booked(client, sandbox)
    old = int(at(tomorrow(), "10:00").timestamp())
    with recording(), session_scope() as s:
        service.reschedule(s, booking_id=bid, member_id=member_id, start=at(tomorrow(), "11:00"))
    assert notify.send_reminder(bid, old) == "not due"


def test_repair_progress_notifies_the_consumer_at_each_step(client, tokens, sandbox, monkeypatch):
    bid, member_id, openid, _ = _booked(client, sandbox, "watch-repair")
    with session_scope() as s:
        consents.grant(s, member_id=member_id, template_id="TPL-PROGRESS", count=3)
    for _ in range(3):
        sandbox.grant_subscribe(openid, "TPL-PROGRESS")
    jobs = []
    for status in ("checked_in", "in_service", "ready"):
        with recording() as recorded:
            r = client.patch(f"/api/v1/bookings/{bid}", json={"status": status}, headers=tokens["zhang"])
        assert r.status_code == 200, r.text
        jobs += [j for j in recorded if j.func is notify.send_progress]
    for job in jobs:
        sandbox.grant_subscribe(openid, "TPL-PROGRESS")
        assert notify.send_progress(*job.args) == "sent"
    assert [m["data"]["phrase2"]["value"] for m in sandbox.mp_subscribe_sends] == ["已到店", "服务中", "可取件"]


def test_an_appointment_service_sends_no_progress_notices(client, tokens, sandbox):
    bid, _, _, _ = _booked(client, sandbox)
    with recording() as recorded:
        client.patch(f"/api/v1/bookings/{bid}", json={"status": "checked_in"}, headers=tokens["zhang"])
    assert not [j for j in recorded if j.func is notify.send_progress]


def test_no_show_after_the_grace_period_and_not_before(client, tokens, sandbox, monkeypatch):
    bid, member_id, _, jobs = _booked(client, sandbox)
    assert service.mark_no_show(bid) == "not due"
    monkeypatch.setattr(service, "utcnow", lambda: at(tomorrow(), "10:31"))
    assert service.mark_no_show(bid) == "no_show"
    assert service.mark_no_show(bid) == "not due"
    with session_scope() as s:
        types = list(s.scalars(select(TimelineEvent.type).where(TimelineEvent.member_id == member_id)))
    assert types.count("booking.no_show") == 1


def test_the_no_show_grace_is_SIYU_BOOKING_NO_SHOW_GRACE_MINUTES(client, tokens, sandbox, monkeypatch):
    from config.settings import get_settings

    # given a deployment that waits 10 minutes, not 30, for a consumer to check in
    monkeypatch.setenv("SIYU_BOOKING_NO_SHOW_GRACE_MINUTES", "10")
    get_settings.cache_clear()
    # when a consumer books 10:00
    bid, _, _, jobs = _booked(client, sandbox)
    # then the no-show check is queued for 10:10, and the booking is no_show from then on
    assert next(j for j in jobs if j.func is service.mark_no_show).at == at(tomorrow(), "10:10")
    monkeypatch.setattr(service, "utcnow", lambda: at(tomorrow(), "10:09"))
    assert service.mark_no_show(bid) == "not due"
    monkeypatch.setattr(service, "utcnow", lambda: at(tomorrow(), "10:11"))
    with session_scope() as s:
        assert service.due_no_shows(s) == [bid]
    assert service.mark_no_show(bid) == "no_show"
