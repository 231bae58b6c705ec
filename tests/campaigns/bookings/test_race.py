"""Capacity is a database invariant: consumers racing over the HTTP API of a served Siyu on PostgreSQL never
overfill a store's time, whatever the lengths of the services they book, nor put a staff member in two bookings."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from campaigns.bookings.capacity import STORE_KEY, units
from campaigns.bookings.models import ACTIVE, Booking, CapacityUnit
from config.database import session_scope
from tests.campaigns.bookings.helpers import at, build_world, tomorrow
from tests.campaigns.groupbuy.conftest import clock, consumer, http, siyu  # noqa: F401 - fixtures reused

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]
CLIENTS = 50


def _race(base_url: str, requests: list[tuple[dict, dict, dict]]) -> list[httpx.Response]:
    """POST every (headers, body, extra headers) to /mp/v1/bookings at once, CLIENTS at a time, over HTTP."""
    gate = threading.Barrier(CLIENTS)
    local = threading.local()

    def one(request) -> httpx.Response:
        headers, body, extra = request
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=60)
            try:
                gate.wait(timeout=30)  # every client connected, then all start together
            except threading.BrokenBarrierError:
                pass
        return local.client.post("/mp/v1/bookings", json=body, headers={**headers, **extra})

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, requests))


def _body(service: str, clock_: str, **extra) -> dict:
    return {"store": "S1", "service": service, "start": at(tomorrow(), clock_).isoformat(), **extra}


def _active() -> list[Booking]:
    with session_scope() as s:
        return list(s.scalars(select(Booking).where(Booking.status.in_(ACTIVE))))


def _units() -> dict[tuple[int, object], int]:
    with session_scope() as s:
        return {(u.staff_key, u.at): u.booked for u in s.scalars(select(CapacityUnit))}


def _covering(bookings: list[Booking], staff_id: int | None = None) -> Counter:
    """How many of the bookings (of one staff member, when given) cover each five-minute unit."""
    return Counter(u for b in bookings if staff_id is None or b.staff_id == staff_id for u in units(b.start, b.end))


def test_200_concurrent_bookings_for_a_slot_of_capacity_3_end_with_exactly_3(siyu, http):  # noqa: F811
    # given S1 with 3 seats at a time, and 200 signed-in consumers
    build_world(http)
    people = [consumer(i)[1] for i in range(200)]
    # when all of them book tomorrow's 10:00 eye test at once over HTTP
    answers = _race(siyu, [(h, _body("eye-test", "10:00"), {}) for h in people])
    # then exactly 3 are booked and 197 are told the slot is full; nothing answers anything else
    assert Counter(a.status_code for a in answers) == {201: 3, 409: 197}
    assert {a.json()["detail"] for a in answers if a.status_code == 409} == {"the slot is full"}
    # and the database agrees: 3 bookings, and 3 seats taken in each unit of the slot
    assert len(_active()) == 3
    assert {k: v for k, v in _units().items() if k[0] == STORE_KEY} == {
        (STORE_KEY, u): 3 for u in units(at(tomorrow(), "10:00"), at(tomorrow(), "10:30"))}
    # and the slot shows no seat left
    slot = http.get("/mp/v1/booking/slots", headers=people[0], params={
        "store": "S1", "service": "eye-test", "date": tomorrow().isoformat()}).json()[0]
    assert slot["remaining"] == 0


def test_services_of_different_lengths_share_the_stores_seats_under_concurrency(siyu, http):  # noqa: F811
    # given S1 with 3 seats at a time, a 60-minute watch repair at 10:00 and 30-minute eye tests at 10:00 and 10:30
    build_world(http)
    people = [consumer(i)[1] for i in range(150)]
    kinds = [("watch-repair", "10:00"), ("eye-test", "10:00"), ("eye-test", "10:30")]
    # when 150 consumers race for them, a third each
    answers = _race(siyu, [(h, _body(*kinds[i % 3]), {}) for i, h in enumerate(people)])
    assert set(Counter(a.status_code for a in answers)) == {201, 409}
    # then at no moment are more than 3 bookings in the store: the repair and each eye test share 3 seats
    booked = _active()
    covering = _covering(booked)
    assert max(covering.values()) == 3
    repairs = sum(b.end - b.start == timedelta(minutes=60) for b in booked)
    early = sum(b.end == at(tomorrow(), "10:30") for b in booked)
    late = sum(b.start == at(tomorrow(), "10:30") for b in booked)
    # and every refusal was of a full unit: repair + early eye test fill 10:00–10:30, repair + late fill 10:30–11:00
    assert repairs + early == 3 and repairs + late == 3
    # and the counters hold exactly what the bookings cover
    assert {u: n for (key, u), n in _units().items() if key == STORE_KEY and n} == dict(covering)


def test_a_staff_member_is_never_in_two_overlapping_bookings_under_concurrency(siyu, http):  # noqa: F811
    # given zhang (one seat at a time) and 60 consumers asking for him: a 10:00 repair or a 10:30 eye test
    build_world(http)
    people = [consumer(i)[1] for i in range(60)]
    kinds = [("watch-repair", "10:00"), ("eye-test", "10:30")]
    answers = _race(siyu, [(h, _body(*kinds[i % 2], staff="zhang"), {}) for i, h in enumerate(people)])
    # then exactly one booking names zhang; everyone else was told he is fully booked
    assert Counter(a.status_code for a in answers) == {201: 1, 409: 59}
    assert {a.json()["detail"] for a in answers if a.status_code == 409} == {
        "the staff member is fully booked at that time"}
    booked = _active()
    assert len(booked) == 1
    # and his counters and the store's hold that one booking only
    assert set(_units().values()) <= {0, 1} and sum(_units().values()) == 2 * len(units(booked[0].start,
                                                                                           booked[0].end))


def test_concurrent_repeats_of_one_idempotency_key_make_one_booking(siyu, http):  # noqa: F811
    # given one consumer whose tap is sent 50 times at once with the same Idempotency-Key
    build_world(http)
    headers = consumer(1)[1]
    answers = _race(siyu, [(headers, _body("eye-test", "10:00"), {"Idempotency-Key": "tap-1"})] * CLIENTS)
    # then one booking exists; the first answer is 201, every repeat 200 with that very booking
    assert Counter(a.status_code for a in answers) == {201: 1, 200: CLIENTS - 1}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(_active()) == 1
    assert {n for (key, _), n in _units().items() if key == STORE_KEY} == {1}
