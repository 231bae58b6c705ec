"""Capacity is a database invariant: concurrent bookings on PostgreSQL never overfill a slot."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from campaigns.bookings import catalog, service
from campaigns.bookings.models import Booking, SlotCounter
from config.database import session_scope
from config.errors import Conflict
from config.queue import recording
from membership.identity import IdentityIn, bind
from membership.service import create_store, upsert_staff
from tests.campaigns.bookings.helpers import at, tomorrow
from sqlalchemy import func, select

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_settings(pg_url, tmp_path, monkeypatch):
    """Settings on the test PostgreSQL (the shared `settings` fixture is parametrised over SQLite too)."""
    from config.settings import get_settings

    monkeypatch.setenv("SIYU_DATABASE_URL", pg_url)
    monkeypatch.delenv("SIYU_REDIS_URL", raising=False)
    monkeypatch.setenv("SIYU_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _world(n_members: int) -> list[int]:
    with session_scope() as s:
        store = create_store(s, code="S1", name="店")
        upsert_staff(s, userid="zhang", name="张", store_id=store.id)
        catalog.create_service(s, code="eye-test", name="验光", duration_minutes=30, price_fen=0, stores=["S1"])
        catalog.set_schedule(s, store=store, hours=[catalog.Hours(d, 600, 720) for d in range(1, 8)], capacity=3,
                             staff_capacity=1)
        return [bind(s, [IdentityIn("unionid", f"u-{i}")]).member.id for i in range(n_members)]


def _race(members: list[int], **booking) -> tuple[int, int]:
    start = at(tomorrow(), "10:00")
    gate = threading.Barrier(min(len(members), 40))

    def one(member_id: int) -> str:
        try:
            gate.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass  # the tail of the crowd starts unsynchronised: still concurrent with the pool
        try:
            with session_scope() as s:
                service.book(s, member_id=member_id, store="S1", service="eye-test", start=start, **booking)
            return "booked"
        except Conflict:
            return "full"

    with recording(), ThreadPoolExecutor(40) as pool:
        outcomes = list(pool.map(one, members))
    return outcomes.count("booked"), outcomes.count("full")


def test_200_concurrent_bookings_for_a_slot_of_capacity_3_end_with_exactly_3(pg_settings):
    # given a slot of capacity 3 and 200 consumers
    members = _world(200)
    # when all of them book it at once (40 threads, each its own transaction)
    booked, full = _race(members)
    # then exactly 3 succeed and 197 are told it is full, and the database agrees
    assert (booked, full) == (3, 197)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Booking)) == 3
        assert s.scalar(select(SlotCounter.booked).where(SlotCounter.staff_key == 0)) == 3


def test_50_concurrent_bookings_of_one_staff_member_end_with_exactly_1(pg_settings):
    members = _world(50)
    booked, full = _race(members, staff="zhang")
    assert (booked, full) == (1, 49)
    with session_scope() as s:
        counters = dict(s.execute(select(SlotCounter.staff_key, SlotCounter.booked)).all())
    assert counters[0] == 1 and sum(v for k, v in counters.items() if k) == 1


def test_concurrent_repeats_of_one_idempotency_key_make_one_booking(pg_settings):
    member = _world(1)[0]
    start = at(tomorrow(), "10:00")

    def one(_):
        with session_scope() as s:
            return service.book(s, member_id=member, store="S1", service="eye-test", start=start,
                                idempotency_key="same")[0].id

    with recording(), ThreadPoolExecutor(20) as pool:
        ids = set(pool.map(one, range(20)))
    assert len(ids) == 1
    with session_scope() as s:
        assert s.scalar(select(SlotCounter.booked).where(SlotCounter.staff_key == 0)) == 1
