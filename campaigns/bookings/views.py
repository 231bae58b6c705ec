"""Bookings and services as the APIs answer them: times in SIYU_TIMEZONE with their offset."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from campaigns.bookings import catalog
from campaigns.bookings.models import BookableService, Booking
from campaigns.bookings.schemas import BookingOut, ServiceOut, SlotOut
from config.settings import get_settings
from membership.models import Staff, Store


def local(at: datetime) -> datetime:
    """An aware instant in business time."""
    return at.astimezone(get_settings().tz)


def service_out(session: Session, service: BookableService) -> ServiceOut:
    """A service with the codes of the stores offering it."""
    return ServiceOut.model_validate({**{c.name: getattr(service, c.name) for c in service.__table__.columns},
                                      "stores": catalog.service_stores(session, service.id)})


def booking_out(session: Session, booking: Booking, *, admin: bool = False) -> BookingOut:
    """A booking; the admin API adds whose it is."""
    service = session.get(BookableService, booking.service_id)
    staff = session.get(Staff, booking.staff_id) if booking.staff_id else None
    ref = session.get(Staff, booking.ref_staff_id) if booking.ref_staff_id else None
    return BookingOut(id=booking.id, status=booking.status, store=session.get(Store, booking.store_id).code,
                      service=service.code, service_name=service.name, start=local(booking.start),
                      end=local(booking.end), staff=staff.userid if staff else None,
                      ref=ref.userid if ref else None, member_id=booking.member_id if admin else None)


def slot_out(slot: catalog.Slot) -> SlotOut:
    """A slot."""
    return SlotOut(start=local(slot.start), end=local(slot.end), staff=slot.staff, remaining=slot.remaining)
