"""Admin API of bookings: services, store schedules, a store's bookings of a day and their progress."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from campaigns.bookings import catalog, service
from campaigns.bookings.schemas import (
    BookingOut, HoursIn, ScheduleIn, ScheduleOut, ServiceIn, ServiceOut, StatusIn, minutes,
)
from campaigns.bookings.views import booking_out, service_out
from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.errors import Forbidden, InvalidInput, NotFound
from config.inputs import DbId
from config.settings import get_settings
from config.types import utcnow
from membership import service as members
from membership.access import Principal, current_principal, require
from membership.models import Role, Staff, Store

router = APIRouter(prefix="/api/v1", tags=["bookings"], responses=ERROR_RESPONSES)


def _own_store(session: Session, who: Principal) -> int | None:
    """The one store a store manager or staff member acts for; None for admins and marketers (every store)."""
    if who.allows(Role.marketer):
        return None
    if who.role is Role.store_manager:
        return who.store_id or -1
    staff = session.get(Staff, who.staff_id) if who.staff_id else None
    return (staff.store_id if staff else None) or who.store_id or -1  # -1: a store that does not exist


@router.post("/services", response_model=ServiceOut, status_code=201)
def create_service(body: ServiceIn, session: Session = request_session,
                   _: Principal = Depends(require(Role.marketer))):
    """A bookable service offered in the listed stores (admins, marketers)."""
    svc = catalog.create_service(session, **body.model_dump(mode="json"))
    return service_out(session, svc)


@router.get("/services", response_model=list[ServiceOut])
def list_services(store: str, session: Session = request_session, _: Principal = Depends(current_principal)):
    """The services a store offers."""
    store_row = members.get_store_by_code(session, store)
    return [service_out(session, s) for s in catalog.services_of_store(session, store_row)]


def _schedule_out(session: Session, store) -> ScheduleOut:
    schedule, hours = catalog.schedule_of(session, store)
    if schedule is None:
        raise NotFound(f"store {store.code!r} has no schedule")
    clock = lambda m: f"{m // 60:02d}:{m % 60:02d}"  # noqa: E731
    return ScheduleOut(store=store.code, capacity=schedule.capacity, staff_capacity=schedule.staff_capacity,
                       hours=[HoursIn(weekday=h.weekday, open=clock(h.open_minute), close=clock(h.close_minute))
                              for h in hours])


@router.post("/stores/{code}/schedule", response_model=ScheduleOut)
def set_schedule(code: str, body: ScheduleIn, session: Session = request_session,
                 who: Principal = Depends(require(Role.store_manager))):
    """Replace a store's opening hours and capacity (admins; that store's manager)."""
    store = members.get_store_by_code(session, code)
    if who.role is Role.store_manager and who.store_id != store.id:
        raise Forbidden("a store manager sets their own store's schedule only")
    hours = [catalog.Hours(h.weekday, minutes(h.open), minutes(h.close)) for h in body.hours]
    catalog.set_schedule(session, store=store, hours=hours, capacity=body.capacity,
                         staff_capacity=body.staff_capacity)
    return _schedule_out(session, store)


@router.get("/stores/{code}/schedule", response_model=ScheduleOut)
def get_schedule(code: str, session: Session = request_session, _: Principal = Depends(current_principal)):
    """A store's opening hours and capacity."""
    return _schedule_out(session, members.get_store_by_code(session, code))


@router.get("/bookings", response_model=list[BookingOut])
def list_bookings(store: str | None = None, day: date | None = Query(None, alias="date"),
                  session: Session = request_session, who: Principal = Depends(current_principal)):
    """A store's bookings of a business day (default today); store managers and staff see their own store only."""
    own = _own_store(session, who)
    if store is None and own is None:
        raise InvalidInput("store: give ?store=<code>")
    store_row = members.get_store_by_code(session, store) if store else session.get(Store, own)
    if store_row is None or (own is not None and store_row.id != own):
        raise NotFound(f"store {store!r} not found")
    day = day or utcnow().astimezone(get_settings().tz).date()
    return [booking_out(session, b, admin=True) for b in service.store_bookings(session, store=store_row, day=day)]


@router.patch("/bookings/{booking_id}", response_model=BookingOut)
def update_booking(booking_id: DbId, body: StatusIn, session: Session = request_session,
                   who: Principal = Depends(require(Role.store_manager, Role.staff))):
    """Move a booking along CONTRACT §7 (admins; that store's manager and staff); an illegal move is 409."""
    booking = service.move(session, booking_id=booking_id, to=body.status, store_id=_own_store(session, who))
    return booking_out(session, booking, admin=True)
