"""Capacity over time ranges and one booking per member and slot, on SQLite and PostgreSQL, through the HTTP API
(the races are in test_race.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from campaigns.bookings.models import Booking
from config.database import session_scope
from tests.campaigns.bookings.helpers import at, login, tomorrow


def _book(client, auth, clock="10:00", service="eye-test", key=None, **extra):
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    body = {"store": "S1", "service": service, "start": at(tomorrow(), clock).isoformat(), **extra}
    return client.post("/mp/v1/bookings", json=body, headers=headers)


def _remaining(client, auth, service: str, **params) -> dict[str, int]:
    r = client.get("/mp/v1/booking/slots", headers=auth, params={
        "store": "S1", "service": service, "date": tomorrow().isoformat(), **params})
    assert r.status_code == 200, r.text
    return {s["start"][11:16]: s["remaining"] for s in r.json()}


def test_a_member_cannot_book_the_same_slot_twice_but_a_repeated_key_still_answers_the_first(client, tokens,
                                                                                            sandbox):
    # given a consumer who booked tomorrow's 10:00 eye test with Idempotency-Key k-1
    auth, member_id, _ = login(client, sandbox)
    first = _book(client, auth, key="k-1")
    assert first.status_code == 201, first.text
    # when they book it again without a key, or with another key, then 409, and no seat is taken
    for again in (_book(client, auth), _book(client, auth, key="k-2")):
        assert again.status_code == 409, again.text
        assert "already have a booking" in again.json()["detail"]
    assert _remaining(client, auth, "eye-test")["10:00"] == 2
    # and the same key still answers the first booking
    repeat = _book(client, auth, key="k-1")
    assert repeat.status_code == 200 and repeat.json() == first.json()
    # and another member may book that slot, and the consumer another one
    assert _book(client, login(client, sandbox)[0]).status_code == 201
    assert _book(client, auth, "11:00").status_code == 201
    # and a reschedule onto the slot they already hold is 409 and moves nothing
    later = client.get("/mp/v1/bookings", headers=auth).json()[0]
    assert later["start"][11:16] == "11:00"
    moved = client.post(f"/mp/v1/bookings/{later['id']}/reschedule", headers=auth,
                        json={"start": at(tomorrow(), "10:00").isoformat()})
    assert moved.status_code == 409 and "already have a booking" in moved.json()["detail"]
    assert client.get(f"/mp/v1/bookings/{later['id']}", headers=auth).json()["start"][11:16] == "11:00"
    # when the first is cancelled, the slot can be booked again
    assert client.post(f"/mp/v1/bookings/{first.json()['id']}/cancel", headers=auth).status_code == 200
    assert _book(client, auth).status_code == 201


def test_one_active_booking_per_member_service_and_start_is_a_database_invariant(client, tokens, sandbox):
    # given a booked booking
    auth, member_id, _ = login(client, sandbox)
    assert _book(client, auth).status_code == 201
    with session_scope() as s:
        first = s.scalar(select(Booking))
        copy = {c: getattr(first, c) for c in ("member_id", "store_id", "service_id", "start", "end")}
    # when any code inserts a second active booking of the same member, service and start, the database refuses it
    with pytest.raises(IntegrityError), session_scope() as s:
        s.add(Booking(**copy, status="checked_in"))
    # while a cancelled one beside it is allowed
    with session_scope() as s:
        s.add(Booking(**copy, status="cancelled"))
    with session_scope() as s:
        assert sorted(b.status for b in s.scalars(select(Booking))) == ["booked", "cancelled"]


def test_a_long_service_and_a_short_one_share_the_stores_seats(client, tokens, sandbox):
    # given S1 with 3 seats at a time, and three 60-minute watch repairs booked at 10:00
    for _ in range(3):
        assert _book(client, login(client, sandbox)[0], service="watch-repair").status_code == 201
    auth, _, _ = login(client, sandbox)
    # then the 30-minute eye tests of 10:00 and 10:30 overlap them and are full; 11:00 is free
    assert _remaining(client, auth, "eye-test") == {"10:00": 0, "10:30": 0, "11:00": 3, "11:30": 3}
    assert _book(client, auth, "10:30").status_code == 409
    assert _book(client, auth, "11:00").status_code == 201
    # and the repair of 11:00 overlaps that eye test: two seats left
    assert _remaining(client, auth, "watch-repair") == {"10:00": 0, "11:00": 2}
    # when one repair is cancelled, one seat comes back over its whole hour
    mine = login(client, sandbox)[0]
    repair = _book(client, mine, "11:00", service="watch-repair").json()
    assert _remaining(client, auth, "eye-test") == {"10:00": 0, "10:30": 0, "11:00": 1, "11:30": 2}
    assert client.post(f"/mp/v1/bookings/{repair['id']}/cancel", headers=mine).status_code == 200
    assert _remaining(client, auth, "eye-test") == {"10:00": 0, "10:30": 0, "11:00": 2, "11:30": 3}


def test_a_staff_member_is_never_in_two_overlapping_bookings(client, tokens, sandbox):
    # given zhang booked for a 30-minute eye test at 10:30
    assert _book(client, login(client, sandbox)[0], "10:30", staff="zhang").status_code == 201
    auth, _, _ = login(client, sandbox)
    # then his 60-minute repair at 10:00 overlaps it and is refused; wang's is not
    r = _book(client, auth, service="watch-repair", staff="zhang")
    assert r.status_code == 409 and r.json()["detail"] == "the staff member is fully booked at that time"
    assert _remaining(client, auth, "watch-repair", staff="zhang") == {"10:00": 0, "11:00": 1}
    assert _book(client, auth, service="watch-repair", staff="wang").status_code == 201
    # and his 11:30 eye test moves to 10:00 (free for him) and frees 11:30, but not onto his 10:30
    other = login(client, sandbox)[0]
    eye = _book(client, other, "11:30", staff="zhang").json()
    assert _remaining(client, auth, "eye-test", staff="zhang") == {"10:00": 1, "10:30": 0, "11:00": 1, "11:30": 0}
    move = f"/mp/v1/bookings/{eye['id']}/reschedule"
    onto = client.post(move, headers=other, json={"start": at(tomorrow(), "10:30").isoformat(), "staff": "zhang"})
    assert onto.status_code == 409
    moved = client.post(move, headers=other, json={"start": at(tomorrow(), "10:00").isoformat(), "staff": "zhang"})
    assert moved.status_code == 200, moved.text
    assert _remaining(client, auth, "eye-test", staff="zhang") == {"10:00": 0, "10:30": 0, "11:00": 1, "11:30": 1}


def test_a_merge_of_two_members_holding_the_same_slot_keeps_both_bookings(client, tokens, sandbox):
    from membership.merge import merge_members
    from membership.models import Member

    # given two members who turn out to be one person, both booked at 10:00, one of them at 11:00 too
    first, first_id, _ = login(client, sandbox)
    second, second_id, _ = login(client, sandbox)
    for auth, clock in ((first, "10:00"), (second, "10:00"), (second, "11:00")):
        assert _book(client, auth, clock).status_code == 201
    # when the second is merged into the first, then the merge goes through (the unique index is respected)
    with session_scope() as s:
        assert merge_members(s, s.get(Member, first_id), s.get(Member, second_id), "test")
    # and the survivor holds the 11:00 booking; the clashing 10:00 one stays with the merged record
    with session_scope() as s:
        owners = sorted((b.start.astimezone(at(tomorrow(), "10:00").tzinfo).strftime("%H:%M"), b.member_id)
                        for b in s.scalars(select(Booking)))
    assert owners == [("10:00", first_id), ("10:00", second_id), ("11:00", first_id)]
