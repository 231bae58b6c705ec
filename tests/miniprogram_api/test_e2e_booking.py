"""End to end over HTTP and the sandbox: log in, bind a phone, grant, book, get reminded, check in, complete."""
from __future__ import annotations

from datetime import timedelta

from config.queue import recording
from config.types import utcnow
from tests.campaigns.bookings.helpers import ADMIN, at, login, tomorrow


def test_a_consumer_books_is_reminded_checks_in_and_completes_and_the_timeline_tells_it(client, tokens, sandbox,
                                                                                        monkeypatch):
    from campaigns.bookings import notify

    # given a consumer who followed zhang's invitation: logs in, binds a phone, accepts the reminder popup
    auth, member_id, openid = login(client, sandbox, unionid="u-e2e")
    r = client.post("/mp/v1/phone", json={"code": sandbox.new_phone_code("13700137000")}, headers=auth)
    assert r.json() == {"phone_masked": "+86137****7000"}
    sandbox.grant_subscribe(openid, "TPL-REMIND")
    r = client.post("/mp/v1/subscriptions", json={"templates": {"TPL-REMIND": "accept", "TPL-X": "reject"}},
                    headers=auth)
    assert r.json() == {"remaining": {"TPL-REMIND": 1, "TPL-X": 0}}
    # when they see the services and slots, and book tomorrow 10:00 with ref=zhang
    services = client.get("/mp/v1/stores/S1/services", headers=auth).json()
    assert [s["code"] for s in services] == ["eye-test", "watch-repair"]
    slot = client.get("/mp/v1/booking/slots", headers=auth, params={
        "store": "S1", "service": "eye-test", "date": tomorrow().isoformat()}).json()[0]
    with recording() as jobs:
        r = client.post("/mp/v1/bookings", headers={**auth, "Idempotency-Key": "tap-1"},
                        json={"store": "S1", "service": "eye-test", "start": slot["start"], "ref": "zhang"})
    assert r.status_code == 201, r.text
    booking = r.json()
    assert booking["status"] == "booked" and booking["ref"] == "zhang"
    # and the reminder job runs when it is due: 20:59 the evening before (08:00 is in quiet hours), or, booked after
    # that (the test runs after 20:59 in Shanghai), when the quiet hours end on the day
    reminder = next(j for j in jobs if j.func is notify.send_reminder)
    evening = at(tomorrow(), "20:59") - timedelta(days=1)
    assert reminder.at == (evening if evening > utcnow() else at(tomorrow(), "09:00"))
    monkeypatch.setattr(notify, "utcnow", lambda: reminder.at)
    assert reminder.func(*reminder.args) == "sent"
    assert [m["template_id"] for m in sandbox.mp_subscribe_sends] == ["TPL-REMIND"]
    # and the store's staff check them in and complete the service
    for status in ("checked_in", "completed"):
        r = client.patch(f"/api/v1/bookings/{booking['id']}", json={"status": status}, headers=tokens["zhang"])
        assert r.status_code == 200 and r.json()["status"] == status
    # then the card shows the completed booking, and the timeline tells the whole story, credited to zhang
    card = client.get("/mp/v1/me", headers=auth).json()
    assert [(b["id"], b["status"]) for b in card["bookings"]] == [(booking["id"], "completed")]
    events = client.get(f"/api/v1/members/{member_id}/timeline", headers=ADMIN).json()["items"]
    types = [e["type"] for e in reversed(events)]
    for expected in ("mp.session", "member.phone_bound", "booking.created", "booking.checked_in", "booking.completed"):
        assert expected in types
    assert types.index("booking.created") < types.index("booking.checked_in") < types.index("booking.completed")
    created = next(e for e in events if e["type"] == "booking.created")
    assert created["data"]["ref"] == "zhang" and created["data"]["service"] == "eye-test"
