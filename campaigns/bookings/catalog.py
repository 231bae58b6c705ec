"""Bookable services, store opening hours and capacity, and the slots they make (in SIYU_TIMEZONE)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.bookings.capacity import STORE_KEY, UNIT, left, remaining
from campaigns.bookings.models import BookableService, CapacityUnit, OpeningHours, ServiceStore, StoreSchedule
from config.errors import Conflict, InvalidInput, NotFound
from config.settings import get_settings
from config.types import utcnow
from membership import service as members
from membership.models import Staff, Store


@dataclass(frozen=True)
class Hours:
    """One opening span: ISO weekday (1 = Monday), minutes after local midnight."""

    weekday: int
    open_minute: int
    close_minute: int


@dataclass(frozen=True)
class Slot:
    """A bookable time and what is left of it."""

    start: datetime
    end: datetime
    remaining: int
    staff: str | None = None


# -- services -----------------------------------------------------------------------------------------
def create_service(session: Session, *, code: str, name: str, duration_minutes: int, price_fen: int,
                   stores: list[str], **extra) -> BookableService:
    """A new service offered in `stores`; Conflict when the code is taken, NotFound for an unknown store."""
    store_rows = [members.get_store_by_code(session, c) for c in dict.fromkeys(stores)]
    service = BookableService(code=code, name=name, duration_minutes=duration_minutes, price_fen=price_fen, **extra)
    try:
        with session.begin_nested():
            session.add(service)
            session.flush()
    except IntegrityError:
        raise Conflict(f"service {code!r} exists") from None
    session.add_all(ServiceStore(service_id=service.id, store_id=s.id) for s in store_rows)
    session.flush()
    return service


def get_service(session: Session, code: str) -> BookableService:
    """The service with `code`, or NotFound."""
    service = session.scalar(select(BookableService).where(BookableService.code == code))
    if service is None:
        raise NotFound(f"service {code!r} not found")
    return service


def service_stores(session: Session, service_id: int) -> list[str]:
    """Codes of the stores offering a service."""
    q = select(Store.code).join(ServiceStore, ServiceStore.store_id == Store.id).where(
        ServiceStore.service_id == service_id)
    return list(session.scalars(q.order_by(Store.code)))


def services_of_store(session: Session, store: Store) -> list[BookableService]:
    """The services a store offers, by code."""
    q = select(BookableService).join(ServiceStore, ServiceStore.service_id == BookableService.id).where(
        ServiceStore.store_id == store.id)
    return list(session.scalars(q.order_by(BookableService.code)))


def offered(session: Session, store: Store, service: BookableService) -> None:
    """NotFound unless the store offers the service."""
    if session.get(ServiceStore, (service.id, store.id)) is None:
        raise NotFound(f"store {store.code!r} does not offer {service.code!r}")


# -- schedules ------------------------------------------------------------------------------------------
def set_schedule(session: Session, *, store: Store, hours: list[Hours], capacity: int,
                 staff_capacity: int = 1) -> StoreSchedule:
    """Replace a store's opening hours and capacity; future slots take the new capacity (never below their bookings)."""
    by_day: dict[int, list[Hours]] = {}
    for h in hours:
        by_day.setdefault(h.weekday, []).append(h)
    for day in by_day.values():
        day.sort(key=lambda h: h.open_minute)
        for a, b in zip(day, day[1:], strict=False):
            if b.open_minute < a.close_minute:
                raise InvalidInput(f"hours: spans of weekday {a.weekday} overlap")
    session.execute(delete(OpeningHours).where(OpeningHours.store_id == store.id))
    session.add_all(OpeningHours(store_id=store.id, weekday=h.weekday, open_minute=h.open_minute,
                                 close_minute=h.close_minute) for h in hours)
    schedule = session.get(StoreSchedule, store.id, with_for_update=True)
    if schedule is None:
        schedule = StoreSchedule(store_id=store.id, capacity=capacity, staff_capacity=staff_capacity)
        session.add(schedule)
    schedule.capacity, schedule.staff_capacity = capacity, staff_capacity
    c = CapacityUnit
    for is_store, new in ((True, capacity), (False, staff_capacity)):
        # A capacity cut leaves seats already booked standing: the CHECK would refuse less.
        session.execute(update(c).where(c.store_id == store.id, c.at > utcnow() - UNIT,
                                        (c.staff_key == STORE_KEY) if is_store else (c.staff_key != STORE_KEY))
                        .values(capacity=case((c.booked > new, c.booked), else_=new)))
    session.flush()
    return schedule


def schedule_of(session: Session, store: Store) -> tuple[StoreSchedule | None, list[OpeningHours]]:
    """A store's capacity row and opening hours."""
    hours = session.scalars(select(OpeningHours).where(OpeningHours.store_id == store.id)
                            .order_by(OpeningHours.weekday, OpeningHours.open_minute))
    return session.get(StoreSchedule, store.id), list(hours)


# -- slots ----------------------------------------------------------------------------------------------
def _starts(session: Session, store: Store, service: BookableService, day: date) -> list[datetime]:
    tz = get_settings().tz
    spans = session.scalars(select(OpeningHours).where(OpeningHours.store_id == store.id,
                                                       OpeningHours.weekday == day.isoweekday()))
    starts = []
    for span in spans:
        minute = span.open_minute
        while minute + service.duration_minutes <= span.close_minute:
            local = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(minutes=minute)
            starts.append(local.astimezone(timezone.utc))
            minute += service.duration_minutes
    return sorted(starts)


def check_slot(session: Session, store: Store, service: BookableService, start: datetime) -> datetime:
    """The end of the slot starting at `start`; InvalidInput unless it is one of the store's future slots."""
    start = start.astimezone(timezone.utc)
    local_day = start.astimezone(get_settings().tz).date()
    if start not in _starts(session, store, service, local_day):
        raise InvalidInput(f"start {start.isoformat()}: not a slot of {service.code!r} in store {store.code!r}")
    if start <= utcnow():
        raise InvalidInput(f"start {start.isoformat()}: the slot has begun")
    return start + timedelta(minutes=service.duration_minutes)


def slots(session: Session, *, store: Store, service: BookableService, day: date,
          staff: Staff | None = None) -> list[Slot]:
    """The day's future slots of a service in a store with the seats left (of the staff member too, when named)."""
    offered(session, store, service)
    schedule = session.get(StoreSchedule, store.id)
    if schedule is None:
        return []
    starts = [s for s in _starts(session, store, service, day) if s > utcnow()]
    if not starts:
        return []
    keys = [STORE_KEY] + ([staff.id] if staff else [])
    ends = [start + timedelta(minutes=service.duration_minutes) for start in starts]
    seats = left(session, store_id=store.id, keys=keys, begin=starts[0] - UNIT, end=ends[-1])
    found = []
    for start, end in zip(starts, ends, strict=True):
        free = remaining(seats, STORE_KEY, start, end, schedule.capacity)
        if staff is not None:
            free = min(free, remaining(seats, staff.id, start, end, schedule.staff_capacity))
        found.append(Slot(start, end, free, staff.userid if staff else None))
    return found
