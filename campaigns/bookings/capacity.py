"""Capacity over time: a store's seats (and each staff member's) counted in five-minute units.

A booking of [start, end) occupies every unit it touches. Taking its seats is one conditional UPDATE per counter
(`booked = booked + 1 WHERE booked < capacity` over the units, RETURNING them): the booking holds only when
every unit answered, otherwise the caller's savepoint rolls the partial take back. Locks are taken in one
global order — the store's counter before the staff members', each by ascending unit — so two bookings,
cancellations or reschedules never deadlock. Times that are not on a five-minute boundary round outward: a
store is never overbooked, at worst a unit shared by two back-to-back odd-minute bookings counts both.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.bookings.models import CapacityUnit, StoreSchedule
from config.database import upsert
from config.errors import Conflict

UNIT = timedelta(minutes=5)
STORE_KEY = 0  # CapacityUnit.staff_key of the store's own counter
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

Span = tuple[datetime, datetime, int | None]  # (start, end, staff id or None)


def units(start: datetime, end: datetime) -> list[datetime]:
    """The starts of the units [start, end) touches."""
    first = _EPOCH + (start.astimezone(timezone.utc) - _EPOCH) // UNIT * UNIT
    found = []
    while first < end:
        found.append(first)
        first += UNIT
    return found


def _keys(staff_id: int | None) -> list[int]:
    return [STORE_KEY] + ([staff_id] if staff_id else [])


class SlotFull(Conflict):
    """The time range (or the named staff member's share of it) has no seat left in one of its units."""


def move(session: Session, *, store_id: int, take: Span | None, give_back: Span | None) -> None:
    """Take the seats of `take` and give back those of `give_back` (a reschedule does both in one go); SlotFull.

    A unit in both is given back first and taken again, so moving a booking by less than its length never
    competes with itself.
    """
    schedule = session.get(StoreSchedule, store_id)
    wanted: dict[int, tuple[list[datetime], list[datetime]]] = {}
    if take is not None:
        for key in _keys(take[2]):
            wanted.setdefault(key, ([], []))[0].extend(units(take[0], take[1]))
    if give_back is not None:
        for key in _keys(give_back[2]):
            wanted.setdefault(key, ([], []))[1].extend(units(give_back[0], give_back[1]))
    c = CapacityUnit
    for key in sorted(wanted):
        taking, giving = wanted[key]
        where = (c.store_id == store_id, c.staff_key == key)
        if taking:
            capacity = schedule.capacity if key == STORE_KEY else schedule.staff_capacity
            upsert(session, c.__table__, [{"store_id": store_id, "staff_key": key, "at": at,
                                                  "capacity": capacity, "booked": 0} for at in taking],
                          ["store_id", "staff_key", "at"])
        session.execute(select(c.id).where(*where, c.at.in_(sorted(set(taking) | set(giving))))
                        .order_by(c.at).with_for_update())
        if giving:
            session.execute(update(c).where(*where, c.at.in_(giving), c.booked > 0).values(booked=c.booked - 1))
        if taking:
            got = session.execute(update(c).where(*where, c.at.in_(taking), c.booked < c.capacity)
                                  .values(booked=c.booked + 1).returning(c.id)).all()
            if len(got) != len(taking):
                raise SlotFull("the slot is full" if key == STORE_KEY
                               else "the staff member is fully booked at that time")


def left(session: Session, *, store_id: int, keys: list[int], begin: datetime, end: datetime) -> dict:
    """(staff_key, unit start) → seats left, for the units of [begin, end) that have a counter."""
    c = CapacityUnit
    rows = session.execute(select(c.staff_key, c.at, c.capacity - c.booked).where(
        c.store_id == store_id, c.staff_key.in_(keys), c.at >= begin, c.at < end)).all()
    return {(key, at.astimezone(timezone.utc)): n for key, at, n in rows}


def remaining(found: dict, key: int, start: datetime, end: datetime, default: int) -> int:
    """Seats left over the whole span [start, end) of one counter: the fewest of its units."""
    return max(min(found.get((key, at), default) for at in units(start, end)), 0)
