"""Consumer API, bookings: a store's services, free slots, booking, cancel, reschedule, the member's bookings."""
from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Header, Query, Response
from sqlalchemy.orm import Session

from campaigns.bookings import catalog, service
from campaigns.bookings.schemas import BookingIn, BookingOut, RescheduleIn, ServiceOut, SlotOut
from campaigns.bookings.views import booking_out, service_out, slot_out
from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.errors import NotFound
from config.inputs import DbId
from membership import service as members
from miniprogram_api.auth import current_member

router = APIRouter(prefix="/mp/v1", tags=["mini-program"], responses=ERROR_RESPONSES)


@router.get("/stores/{code}/services", response_model=list[ServiceOut])
def store_services(code: str, _: int = Depends(current_member), session: Session = request_session):
    """The services a store offers."""
    store = members.get_store_by_code(session, code)
    return [service_out(session, s) for s in catalog.services_of_store(session, store)]


@router.get("/booking/slots", response_model=list[SlotOut], response_model_exclude_none=True)
def slots(store: str = Query(min_length=1, max_length=40), svc: str = Query(alias="service", min_length=1,
                                                                               max_length=40),
          day: date = Query(alias="date"), staff: str | None = Query(None, min_length=1, max_length=64),
          _: int = Depends(current_member), session: Session = request_session):
    """The day's free slots (SIYU_TIMEZONE) with the seats left; with `staff`, that staff member's."""
    store_row = members.get_store_by_code(session, store)
    staff_row = members.get_staff(session, staff) if staff else None
    if staff_row is not None and staff_row.store_id != store_row.id:
        raise NotFound(f"staff {staff!r} does not work in store {store!r}")
    found = catalog.slots(session, store=store_row, service=catalog.get_service(session, svc), day=day,
                          staff=staff_row)
    return [slot_out(s) for s in found]


@router.post("/bookings", response_model=BookingOut, status_code=201, response_model_exclude_none=True)
def create_booking(body: BookingIn, response: Response,
                   idempotency_key: str | None = Header(None, alias="Idempotency-Key", min_length=1, max_length=100),
                   member_id: int = Depends(current_member), session: Session = request_session):
    """Book a slot (409 when full); a repeated Idempotency-Key answers the first booking again (200)."""
    booking, created = service.book(session, member_id=member_id, store=body.store, service=body.service,
                                    start=body.start, staff=body.staff, ref=body.ref,
                                    idempotency_key=idempotency_key)
    if not created:
        response.status_code = 200
    return _committed(session, booking_out(session, booking))


@router.get("/bookings", response_model=list[BookingOut], response_model_exclude_none=True)
def my_bookings(member_id: int = Depends(current_member), session: Session = request_session):
    """The member's bookings, latest appointment first."""
    return [booking_out(session, b) for b in service.member_bookings(session, member_id)]


@router.get("/bookings/{booking_id}", response_model=BookingOut, response_model_exclude_none=True)
def my_booking(booking_id: DbId, member_id: int = Depends(current_member), session: Session = request_session):
    """One of the member's bookings, with its progress (404 for anyone else's)."""
    return booking_out(session, service.get_booking(session, booking_id, member_id=member_id))


@router.post("/bookings/{booking_id}/cancel", response_model=BookingOut, response_model_exclude_none=True)
def cancel_booking(booking_id: DbId, member_id: int = Depends(current_member), session: Session = request_session):
    """Cancel one's own booked booking (409 once it is checked in or over)."""
    booking = service.cancel(session, booking_id=booking_id, member_id=member_id)
    return _committed(session, booking_out(session, booking))


@router.post("/bookings/{booking_id}/reschedule", response_model=BookingOut, response_model_exclude_none=True)
def reschedule_booking(booking_id: DbId, body: RescheduleIn, member_id: int = Depends(current_member),
                       session: Session = request_session):
    """Move one's own booked booking to another slot, in one transaction (409 when that slot is full)."""
    booking = service.reschedule(session, booking_id=booking_id, member_id=member_id, start=body.start,
                                 staff=body.staff)
    return _committed(session, booking_out(session, booking))


def _committed(session: Session, answer: BookingOut) -> BookingOut:
    # Commit here, in the endpoint's own worker: FastAPI validates a sync endpoint's answer in the shared worker pool
    # *before* request_session's teardown commits, so under a crowd of bookings the answer waited for a worker while
    # every worker waited on the seat rows this transaction held (a deadlock until the connection pool timed out).
    session.commit()
    return answer
