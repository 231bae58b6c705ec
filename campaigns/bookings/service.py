"""Bookings: take a seat by conditional UPDATE, cancel, reschedule in one transaction, move along CONTRACT §7.

A booking's seats are the five-minute capacity units its time range covers (the store's, and the staff member's
when the booking names one, see capacity.py): `UPDATE … SET booked = booked + 1 WHERE booked < capacity
RETURNING` takes them or finds one full, and the CHECK `booked <= capacity` backs it. A member holds one active
booking per service and start (a partial unique index). Nothing here reads a count and then decides.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from campaigns.bookings import capacity, catalog, notify
from campaigns.bookings.models import ACTIVE, BookableService, Booking, BookingStatus, StoreSchedule
from config.database import session_scope
from config.errors import Conflict, InvalidInput, NotFound
from config.queue import enqueue
from config.settings import get_settings
from config.types import utcnow
from membership import service as members
from membership.models import Staff, Store
from membership.timeline import record_event

log = logging.getLogger(__name__)

S = BookingStatus
MOVES: dict[str, set[str]] = {  # CONTRACT §7; services without a repair's progress go from check-in to completed
    S.booked: {S.checked_in, S.cancelled, S.no_show},
    S.checked_in: {S.in_service, S.completed},
    S.in_service: {S.ready, S.completed},
    S.ready: {S.completed},
}
EVENTS = {S.checked_in: "booking.checked_in", S.completed: "booking.completed", S.cancelled: "booking.cancelled",
          S.no_show: "booking.no_show"}


def no_show_grace() -> timedelta:
    """How long after its start a booking nobody checked in becomes `no_show` (SIYU_BOOKING_NO_SHOW_GRACE_MINUTES)."""
    return timedelta(minutes=get_settings().booking_no_show_grace_minutes)


def _active(session: Session, member_id: int, service_id: int, start: datetime) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.member_id == member_id, Booking.service_id == service_id,
                                                Booking.start == start, Booking.status.in_(ACTIVE)))


def _already_booked(start: datetime) -> Conflict:
    return Conflict(f"you already have a booking of this service at {start.isoformat()}")


# -- booking --------------------------------------------------------------------------------------------
def _staff_in(session: Session, store: Store, userid: str | None) -> Staff | None:
    if not userid:
        return None
    staff = members.find_staff(session, userid)
    if staff is None or not staff.active or staff.store_id != store.id:
        raise NotFound(f"staff {userid!r} does not work in store {store.code!r}")
    return staff


def _digest(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _by_key(session: Session, member_id: int, key: str, digest: str) -> Booking | None:
    found = session.scalar(select(Booking).where(Booking.member_id == member_id, Booking.idempotency_key == key))
    if found is not None and found.request_digest != digest:
        raise Conflict("Idempotency-Key was used for a different booking request")
    return found


def book(session: Session, *, member_id: int, store: str, service: str, start: datetime, staff: str | None = None,
         ref: str | None = None, idempotency_key: str | None = None) -> tuple[Booking, bool]:
    """Book a slot for a member; (booking, created). A repeated Idempotency-Key returns the first booking."""
    start = start.astimezone(timezone.utc)
    digest = _digest(store=store, service=service, start=start.isoformat(), staff=staff)
    if idempotency_key and (first := _by_key(session, member_id, idempotency_key, digest)) is not None:
        return first, False
    store_row = members.get_store_by_code(session, store)
    svc = catalog.get_service(session, service)
    catalog.offered(session, store_row, svc)
    if session.get(StoreSchedule, store_row.id) is None:
        raise NotFound(f"store {store!r} takes no bookings (no schedule)")
    end = catalog.check_slot(session, store_row, svc, start)
    staff_row = _staff_in(session, store_row, staff)
    ref_row = members.find_staff(session, ref) if ref else None
    if ref and ref_row is None:
        log.info("booking: ref %r names no staff member Siyu knows; not credited", ref)
    try:
        with session.begin_nested():
            capacity.move(session, store_id=store_row.id, take=(start, end, staff_row and staff_row.id), give_back=None)
            booking = Booking(member_id=member_id, store_id=store_row.id, service_id=svc.id,
                              staff_id=staff_row and staff_row.id, ref_staff_id=ref_row and ref_row.id,
                              start=start, end=end, idempotency_key=idempotency_key or None,
                              request_digest=digest if idempotency_key else None)
            session.add(booking)
            session.flush()
    except IntegrityError:
        # The same key committed by a concurrent request (its seat is the one kept; ours rolled back), or the member
        # already holds this slot of the service: one active booking per member, service and start (a unique index).
        first = _by_key(session, member_id, idempotency_key, digest) if idempotency_key else None
        if first is not None:
            return first, False
        if _active(session, member_id, svc.id, start) is not None:
            raise _already_booked(start) from None
        raise
    record_event(session, member_id, "booking.created", event_data(session, booking),
                 dedupe_key=f"booking:{booking.id}:created")
    _schedule_jobs(session, booking, svc)
    return booking, True


def _schedule_jobs(session: Session, booking: Booking, svc: BookableService) -> None:
    notify.schedule_reminder(session, booking, svc)
    at = booking.start + no_show_grace()
    enqueue(mark_no_show, booking.id, at=at, job_id=f"booking_no_show:{booking.id}:{int(booking.start.timestamp())}",
            session=session)


def event_data(session: Session, booking: Booking) -> dict:
    """What a booking's timeline events carry (`service` is its code, as segment conditions filter on it)."""
    data = {"booking_id": booking.id, "service": session.get(BookableService, booking.service_id).code,
            "store": session.get(Store, booking.store_id).code, "start": booking.start.isoformat()}
    if booking.staff_id:
        data["staff"] = session.get(Staff, booking.staff_id).userid
    if booking.ref_staff_id:
        data["ref"] = session.get(Staff, booking.ref_staff_id).userid
    return data


def get_booking(session: Session, booking_id: int, *, member_id: int | None = None,
                store_id: int | None = None) -> Booking:
    """A booking (the member's own, or of one store, when given), locked for update; NotFound otherwise."""
    q = select(Booking).where(Booking.id == booking_id).with_for_update()
    booking = session.scalar(q)
    if booking is None or (member_id is not None and booking.member_id != member_id) \
            or (store_id is not None and booking.store_id != store_id):
        raise NotFound(f"booking {booking_id} not found")
    return booking


def move(session: Session, *, booking_id: int, to: str, member_id: int | None = None,
         store_id: int | None = None) -> Booking:
    """Move a booking to status `to` along CONTRACT §7; Conflict for an illegal move."""
    try:
        target = S(to)
    except ValueError:
        raise InvalidInput(f"status {to!r}: one of {', '.join(s.value for s in S)}") from None
    booking = get_booking(session, booking_id, member_id=member_id, store_id=store_id)
    current = booking.status
    if target not in MOVES.get(S(current), set()):
        raise Conflict(f"booking {booking_id} is {current}: it cannot become {target.value}")
    moved = session.execute(update(Booking).where(Booking.id == booking.id, Booking.status == current)
                            .values(status=target.value, updated_at=utcnow()).returning(Booking.id)).first()
    if moved is None:  # pragma: no cover - the row lock above makes this a belt to the braces
        raise Conflict(f"booking {booking_id} changed meanwhile")
    session.refresh(booking)
    if target is S.cancelled:
        capacity.move(session, store_id=booking.store_id, take=None,
                      give_back=(booking.start, booking.end, booking.staff_id))
    if target in EVENTS:
        record_event(session, booking.member_id, EVENTS[target], event_data(session, booking),
                     dedupe_key=f"booking:{booking.id}:{target.value}")
    notify.schedule_progress(session, booking, session.get(BookableService, booking.service_id), target.value)
    return booking


def reschedule(session: Session, *, booking_id: int, member_id: int, start: datetime,
               staff: str | None = None) -> Booking:
    """Move a `booked` booking to another slot of the same service and store: the new seat and the old one change
    hands in one transaction, or nothing changes (capacity.SlotFull)."""
    booking = get_booking(session, booking_id, member_id=member_id)
    if booking.status != S.booked.value:
        raise Conflict(f"booking {booking_id} is {booking.status}: only a booked one is rescheduled")
    store = session.get(Store, booking.store_id)
    svc = session.get(BookableService, booking.service_id)
    start = start.astimezone(timezone.utc)
    end = catalog.check_slot(session, store, svc, start)
    staff_row = _staff_in(session, store, staff)
    new_staff = staff_row and staff_row.id
    if start == booking.start and new_staff == booking.staff_id:
        return booking
    try:
        with session.begin_nested():
            capacity.move(session, store_id=store.id, take=(start, end, new_staff),
                   give_back=(booking.start, booking.end, booking.staff_id))
            booking.start, booking.end, booking.staff_id = start, end, new_staff
            session.flush()
    except IntegrityError:
        session.refresh(booking)
        raise _already_booked(start) from None
    _schedule_jobs(session, booking, svc)
    return booking


def cancel(session: Session, *, booking_id: int, member_id: int) -> Booking:
    """The member cancels their own booked booking."""
    return move(session, booking_id=booking_id, to=S.cancelled.value, member_id=member_id)


def member_bookings(session: Session, member_id: int, limit: int = 100) -> list[Booking]:
    """A member's bookings, latest appointment first."""
    q = select(Booking).where(Booking.member_id == member_id).order_by(Booking.start.desc(), Booking.id.desc())
    return list(session.scalars(q.limit(limit)))


def store_bookings(session: Session, *, store: Store, day: date) -> list[Booking]:
    """A store's bookings of one business day (SIYU_TIMEZONE), by start."""
    tz = get_settings().tz
    begin = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)
    q = select(Booking).where(Booking.store_id == store.id, Booking.start >= begin,
                              Booking.start < begin + timedelta(days=1))
    return list(session.scalars(q.order_by(Booking.start, Booking.id)))


def mark_no_show(booking_id: int) -> str:
    """Job: a booking still `booked` a grace period after its start becomes `no_show`."""
    with session_scope() as session:
        booking = session.get(Booking, booking_id)
        if booking is None or booking.status != S.booked.value or utcnow() < booking.start + no_show_grace():
            return "not due"  # checked in, cancelled, or rescheduled to later (that time has its own job)
        move(session, booking_id=booking_id, to=S.no_show.value)
    log.info("booking %s: no_show", booking_id)
    return "no_show"


def due_no_shows(session: Session, limit: int = 500) -> list[int]:
    """Ids of bookings past their grace period and still booked (a sweep catches jobs a restart forgot)."""
    q = select(Booking.id).where(Booking.status == S.booked.value, Booking.start < utcnow() - no_show_grace())
    return list(session.scalars(q.order_by(Booking.id).limit(limit)))


def move_member(session: Session, survivor_id: int, merged_id: int) -> None:
    """After a merge the survivor holds the merged member's bookings (a colliding Idempotency-Key is dropped).

    An active booking of a slot the survivor holds too stays with the merged record (one active booking per
    member, service and start is a unique index; the merged record's pointer still leads to the person).
    """
    mine = select(Booking.idempotency_key).where(Booking.member_id == survivor_id,
                                                  Booking.idempotency_key.is_not(None))
    session.execute(update(Booking).where(Booking.member_id == merged_id, Booking.idempotency_key.in_(mine))
                    .values(idempotency_key=None))
    other = aliased(Booking)
    clash = exists().where(other.member_id == survivor_id, other.service_id == Booking.service_id,
                           other.start == Booking.start, other.status.in_(ACTIVE))
    session.execute(update(Booking).where(Booking.member_id == merged_id, ~(Booking.status.in_(ACTIVE) & clash))
                    .values(member_id=survivor_id))
