"""Tables of bookings: services, store hours, capacity units (capacity as a CHECK) and the bookings themselves."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import UTCDateTime, utcnow


class ServiceKind(str, enum.Enum):
    """`repair` services tell the consumer about every progress step; `appointment` ones only remind."""

    appointment = "appointment"
    repair = "repair"


class BookingStatus(str, enum.Enum):
    """CONTRACT §7's booking states."""

    booked = "booked"
    checked_in = "checked_in"
    in_service = "in_service"
    ready = "ready"
    completed = "completed"
    cancelled = "cancelled"
    no_show = "no_show"


def _in(column: str, enum_: type[enum.Enum]) -> str:
    return f"{column} IN ({', '.join(repr(s.value) for s in enum_)})"


class BookableService(Base):
    """Something a consumer books: an eye test, a watch repair."""

    __tablename__ = "booking_services"
    __table_args__ = (
        CheckConstraint("duration_minutes > 0 AND duration_minutes <= 1440", name="duration"),
        CheckConstraint("price_fen >= 0", name="price"),
        CheckConstraint("remind_minutes_before >= 0", name="remind"),
        CheckConstraint(_in("kind", ServiceKind), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    price_fen: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20), default=ServiceKind.appointment.value)
    # Subscribe-message templates (mini-program 订阅消息); none: that message is not sent.
    reminder_template_id: Mapped[str | None] = mapped_column(String(64))
    progress_template_id: Mapped[str | None] = mapped_column(String(64))
    remind_minutes_before: Mapped[int] = mapped_column(Integer, default=120)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceStore(Base):
    """A store that offers a service."""

    __tablename__ = "booking_service_stores"

    service_id: Mapped[int] = mapped_column(ForeignKey("booking_services.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)


class StoreSchedule(Base):
    """A store's booking capacity: per slot, and per staff member for bookings that name one."""

    __tablename__ = "booking_schedules"
    __table_args__ = (CheckConstraint("capacity >= 0 AND staff_capacity >= 0", name="capacity"),)

    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)
    staff_capacity: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OpeningHours(Base):
    """One opening span of a store on an ISO weekday, in minutes after local midnight (SIYU_TIMEZONE)."""

    __tablename__ = "booking_hours"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 1 AND 7", name="weekday"),
        CheckConstraint("open_minute >= 0 AND open_minute < close_minute AND close_minute <= 1440", name="span"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    open_minute: Mapped[int] = mapped_column(Integer)
    close_minute: Mapped[int] = mapped_column(Integer)


class CapacityUnit(Base):
    """Seats taken in one five-minute unit of a store's time: the store's (`staff_key` 0) or one staff member's.

    A booking takes a seat in every unit its time range touches, with one `UPDATE … SET booked = booked + 1
    WHERE booked < capacity RETURNING` over those units, and is refused unless every unit answered; the CHECK
    makes overbooking impossible whatever code runs. Services of any length share the store's units, so a
    60-minute and a 30-minute booking that overlap count against the same seats, and a staff member is never in
    two overlapping bookings beyond their capacity.
    """

    __tablename__ = "booking_units"
    __table_args__ = (
        UniqueConstraint("store_id", "staff_key", "at"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="booked_within_capacity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    staff_key: Mapped[int] = mapped_column(Integer, default=0)  # 0: the store's counter; no FK, so 0 can exist
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # the unit's start (a multiple of five minutes)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0)


ACTIVE = tuple(s.value for s in (BookingStatus.booked, BookingStatus.checked_in, BookingStatus.in_service,
                                 BookingStatus.ready))  # a booking in one of these holds its seats and its slot
_ACTIVE_SQL = "status IN (" + ", ".join(f"'{s}'" for s in ACTIVE) + ")"


class Booking(Base):
    """One consumer's appointment; `idempotency_key` (the client's header) returns the first booking on a repeat."""

    __tablename__ = "bookings"
    __table_args__ = (
        UniqueConstraint("member_id", "idempotency_key"),
        CheckConstraint(_in("status", BookingStatus), name="status"),
        # A member holds one active booking of a service at a time (a cancelled or finished one may be booked again).
        Index("uq_bookings_member_slot", "member_id", "service_id", "start", unique=True,
              postgresql_where=text(_ACTIVE_SQL), sqlite_where=text(_ACTIVE_SQL)),
        Index("ix_bookings_store_start", "store_id", "start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("booking_services.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    ref_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))  # whose invitation it followed
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=BookingStatus.booked.value)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    request_digest: Mapped[str | None] = mapped_column(String(64))  # what the key was first used for
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
