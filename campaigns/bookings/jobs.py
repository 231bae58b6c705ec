"""Sweeps of bookings (enqueued by scheduled.py): they find what delayed jobs a restart or a flushed Redis forgot."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from campaigns.bookings import notify, service
from campaigns.bookings.models import BookableService, Booking, BookingStatus
from config.database import session_scope
from config.queue import enqueue
from config.types import utcnow

HORIZON = timedelta(days=8)  # reminders are looked for this far ahead (leads are at most 7 days)


def sweep_no_shows() -> int:
    """Mark every booking past its grace period and still booked as no_show; how many."""
    with session_scope() as session:
        ids = service.due_no_shows(session)
    return sum(service.mark_no_show(i) == "no_show" for i in ids)


def sweep_reminders() -> int:
    """Queue again the reminder of every upcoming booked booking (the job id and the ledger keep it single)."""
    now = utcnow()
    queued = 0
    with session_scope() as session:
        rows = session.execute(select(Booking, BookableService).join(
            BookableService, BookableService.id == Booking.service_id).where(
            Booking.status == BookingStatus.booked.value, Booking.start > now, Booking.start < now + HORIZON,
            BookableService.reminder_template_id.is_not(None))).all()
        for booking, svc in rows:
            due = notify.reminder_due(booking.start, timedelta(minutes=svc.remind_minutes_before), now)
            enqueue(notify.send_reminder, booking.id, int(booking.start.timestamp()), at=due,
                    job_id=notify.reminder_key(booking.id, booking.start), session=session)
            queued += 1
    return queued
