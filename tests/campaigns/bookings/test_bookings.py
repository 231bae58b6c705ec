"""Bookings over the HTTP APIs: slots, booking, idempotency, cancel, reschedule, CONTRACT §7 moves and scopes."""
from __future__ import annotations

from config.queue import recording
from tests.campaigns.bookings.helpers import ADMIN, at, login, tomorrow


def _book(client, auth, clock="10:00", service="eye-test", key=None, **extra):
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    body = {"store": "S1", "service": service, "start": at(tomorrow(), clock).isoformat(), **extra}
    return client.post("/mp/v1/bookings", json=body, headers=headers)


def test_slots_are_the_days_opening_hours_in_service_lengths_with_the_seats_left(client, tokens, sandbox):
    # given S1 open 10:00–12:00 with 3 seats a slot, and one booking at 10:30
    auth, _, _ = login(client, sandbox)
    assert _book(client, auth, "10:30").status_code == 201
    # when the consumer asks for tomorrow's eye-test slots
    r = client.get("/mp/v1/booking/slots", params={"store": "S1", "service": "eye-test",
                                                    "date": tomorrow().isoformat()}, headers=auth)
    # then there are four 30-minute slots in business time, 10:30 with two seats left
    assert r.status_code == 200
    slots = r.json()
    assert [s["start"][11:16] for s in slots] == ["10:00", "10:30", "11:00", "11:30"]
    assert slots[0]["start"].endswith("+08:00") and slots[0]["end"][11:16] == "10:30"
    assert [s["remaining"] for s in slots] == [3, 2, 3, 3] and "staff" not in slots[0]
    # and a staff member's slots show their own share (one seat each)
    r = client.get("/mp/v1/booking/slots", params={"store": "S1", "service": "eye-test", "staff": "zhang",
                                                    "date": tomorrow().isoformat()}, headers=auth)
    assert {(s["staff"], s["remaining"]) for s in r.json()} == {("zhang", 1)}


def test_a_full_slot_is_409_and_a_start_off_the_grid_is_422(client, tokens, sandbox):
    # given three consumers holding the 10:00 slot's three seats
    for _ in range(3):
        assert _book(client, login(client, sandbox)[0]).status_code == 201
    auth, _, _ = login(client, sandbox)
    # when a fourth books it, then 409; a time that is no slot, a past day and an unknown service are refused
    assert _book(client, auth).status_code == 409
    assert _book(client, auth, "10:10").status_code == 422
    assert client.post("/mp/v1/bookings", headers=auth, json={
        "store": "S1", "service": "eye-test", "start": "2020-01-01T10:00:00+08:00"}).status_code == 422
    assert _book(client, auth, service="nope").status_code == 404
    assert _book(client, auth, "10:00", staff="li").status_code == 404  # li works in S2


def test_a_repeated_idempotency_key_returns_the_first_booking_and_takes_no_second_seat(client, tokens, sandbox):
    auth, _, _ = login(client, sandbox)
    first = _book(client, auth, key="k-1")
    again = _book(client, auth, key="k-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    # then one seat is taken, one booking exists, and the key cannot be reused for another slot
    assert len(client.get("/mp/v1/bookings", headers=auth).json()) == 1
    assert _book(client, auth, "11:00", key="k-1").status_code == 409


def test_a_named_staff_member_has_their_own_capacity(client, tokens, sandbox):
    # given zhang booked at 10:00 by one consumer
    assert _book(client, login(client, sandbox)[0], staff="zhang").status_code == 201
    # when another consumer asks for zhang at 10:00, then 409; wang or no staff still fit
    assert _book(client, login(client, sandbox)[0], staff="zhang").status_code == 409
    assert _book(client, login(client, sandbox)[0], staff="wang").status_code == 201
    assert _book(client, login(client, sandbox)[0]).status_code == 201
    # and the slot is now full for everyone (store capacity 3)
    assert _book(client, login(client, sandbox)[0]).status_code == 409


def test_cancel_gives_the_seat_back_and_reschedule_moves_it_in_one_go(client, tokens, sandbox):
    auth, _, _ = login(client, sandbox)
    others = [login(client, sandbox)[0] for _ in range(2)]
    booking = _book(client, auth).json()
    for other in others:
        assert _book(client, other, "11:00").status_code == 201
    # when the consumer reschedules to 11:00 (2 of 3 taken), then 10:00 frees and 11:00 fills
    r = client.post(f"/mp/v1/bookings/{booking['id']}/reschedule", headers=auth,
                    json={"start": at(tomorrow(), "11:00").isoformat()})
    assert r.status_code == 200 and r.json()["start"][11:16] == "11:00"
    slots = {s["start"][11:16]: s["remaining"] for s in client.get("/mp/v1/booking/slots", headers=auth, params={
        "store": "S1", "service": "eye-test", "date": tomorrow().isoformat()}).json()}
    assert slots["10:00"] == 3 and slots["11:00"] == 0
    # and a reschedule into a full slot changes nothing
    mover = login(client, sandbox)[0]
    mine = _book(client, mover, "11:30").json()
    r = client.post(f"/mp/v1/bookings/{mine['id']}/reschedule", headers=mover,
                    json={"start": at(tomorrow(), "11:00").isoformat()})
    assert r.status_code == 409
    assert client.get(f"/mp/v1/bookings/{mine['id']}", headers=mover).json()["start"][11:16] == "11:30"
    # when cancelled, the seat comes back, and a second cancel is 409
    assert client.post(f"/mp/v1/bookings/{booking['id']}/cancel", headers=auth).json()["status"] == "cancelled"
    assert client.post(f"/mp/v1/bookings/{booking['id']}/cancel", headers=auth).status_code == 409
    # and someone else's booking is 404 to this consumer
    assert client.post(f"/mp/v1/bookings/{mine['id']}/cancel", headers=auth).status_code == 404


def test_status_moves_follow_contract_7_and_illegal_ones_are_409(client, tokens, sandbox):
    auth, _, _ = login(client, sandbox)
    bid = _book(client, auth).json()["id"]

    def patch(status, who=tokens["manager1"]):
        return client.patch(f"/api/v1/bookings/{bid}", json={"status": status}, headers=who)

    assert patch("completed").status_code == 409  # not checked in
    assert patch("flying").status_code == 422
    assert patch("checked_in").json()["status"] == "checked_in"
    assert patch("cancelled").status_code == 409
    assert patch("booked").status_code == 409
    assert patch("completed", tokens["zhang"]).json()["status"] == "completed"
    assert patch("checked_in").status_code == 409


def test_store_managers_and_staff_see_and_move_only_their_stores_bookings(client, tokens, sandbox):
    auth, member_id, _ = login(client, sandbox)
    bid = _book(client, auth).json()["id"]
    day = tomorrow().isoformat()
    # then S1's manager and staff list it, with whose it is; S2's see nothing of S1 (404) and cannot move it
    listed = client.get("/api/v1/bookings", params={"date": day}, headers=tokens["manager1"]).json()
    assert [(b["id"], b["member_id"]) for b in listed] == [(bid, member_id)]
    assert len(client.get("/api/v1/bookings", params={"store": "S1", "date": day}, headers=tokens["zhang"]).json()) == 1
    assert client.get("/api/v1/bookings", params={"store": "S1", "date": day},
                      headers=tokens["manager2"]).status_code == 404
    assert client.get("/api/v1/bookings", params={"date": day}, headers=tokens["li"]).json() == []
    for who in ("manager2", "li"):
        assert client.patch(f"/api/v1/bookings/{bid}", json={"status": "checked_in"},
                            headers=tokens[who]).status_code == 404
    assert client.patch(f"/api/v1/bookings/{bid}", json={"status": "checked_in"},
                        headers=tokens["marketer"]).status_code == 403
    # and a store manager sets only their own store's schedule; services are for admins and marketers
    hours = {"hours": [], "capacity": 1}
    assert client.post("/api/v1/stores/S2/schedule", json=hours, headers=tokens["manager1"]).status_code == 403
    assert client.post("/api/v1/stores/S1/schedule", json={**hours, "hours": [
        {"weekday": 1, "open": "10:00", "close": "12:00"}]}, headers=tokens["manager1"]).status_code == 200
    assert client.post("/api/v1/services", headers=tokens["manager1"], json={
        "code": "x", "name": "x", "duration_minutes": 30, "price_fen": 0, "stores": ["S1"]}).status_code == 403


def test_a_capacity_cut_keeps_the_seats_already_booked(client, tokens, sandbox):
    for _ in range(2):
        assert _book(client, login(client, sandbox)[0]).status_code == 201
    # when the manager cuts capacity to 1, then the two bookings stand and the slot shows no seat left
    r = client.post("/api/v1/stores/S1/schedule", json={"hours": [{"weekday": d, "open": "10:00", "close": "12:00"}
                                                                   for d in range(1, 8)], "capacity": 1},
                    headers=ADMIN)
    assert r.status_code == 200
    auth = login(client, sandbox)[0]
    slots = client.get("/mp/v1/booking/slots", headers=auth, params={
        "store": "S1", "service": "eye-test", "date": tomorrow().isoformat()}).json()
    assert slots[0]["remaining"] == 0 and slots[1]["remaining"] == 1
    assert _book(client, auth).status_code == 409


def test_bad_schedules_are_422(client, tokens):
    bad = [{"hours": [{"weekday": 8, "open": "10:00", "close": "12:00"}], "capacity": 1},
           {"hours": [{"weekday": 1, "open": "12:00", "close": "10:00"}], "capacity": 1},
           {"hours": [{"weekday": 1, "open": "10:00", "close": "12:00"},
                      {"weekday": 1, "open": "11:00", "close": "13:00"}], "capacity": 1},
           {"hours": [], "capacity": -1}]
    for body in bad:
        assert client.post("/api/v1/stores/S1/schedule", json=body, headers=ADMIN).status_code == 422, body


def test_a_booking_queues_its_reminder_and_its_no_show_check(client, tokens, sandbox):
    auth, _, _ = login(client, sandbox)
    with recording() as jobs:
        bid = _book(client, auth).json()["id"]
    names = sorted(j.func.__name__ for j in jobs if j.func.__module__.startswith("campaigns.bookings"))
    assert names == ["mark_no_show", "send_reminder"]
    no_show = next(j for j in jobs if j.func.__name__ == "mark_no_show")
    assert no_show.args == (bid,) and no_show.at == at(tomorrow(), "10:30")
