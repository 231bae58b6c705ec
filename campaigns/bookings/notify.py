"""What bookings tell the consumer by mini-program subscribe message: reminders before, and repair progress.

Every message is claimed in the send ledger (bot/sends.py) under its key and takes one of the member's grants
(membership/consents.py) in the same transaction; no grant, no openid or quiet hours until it is too late
leave a `skipped` row saying why. Quiet hours (config/quiet_hours.py): a reminder moves earlier, to the last
minute before they begin; a progress notice waits for their end.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import sends
from bot.clients import mp_client
from bot.credentials import mp_credentials
from bot.errors import PermanentAPIError, TransportError, WeChatAPIError
from bot.models import SendStatus
from campaigns.bookings.models import BookableService, Booking, BookingStatus
from config.database import session_scope
from config.queue import enqueue
from config.settings import get_settings
from config.types import utcnow
from membership import consents
from membership.models import Identity, Store

log = logging.getLogger(__name__)

PAGE = "pages/booking/detail"  # the mini-program page a message opens, with ?id=<booking id>
THING_MAX = 20  # characters Tencent allows in a `thing` value
PROGRESS_WORDS = {"checked_in": "已到店", "in_service": "服务中", "ready": "可取件", "completed": "已完成"}


def reminder_key(booking_id: int, start: datetime) -> str:
    """The ledger key of the reminder of a booking at `start` (a rescheduled booking gets a new one)."""
    return f"booking_reminder:{booking_id}:{int(start.timestamp())}"


def reminder_due(start: datetime, lead: timedelta, now: datetime) -> datetime:
    """When to remind of an appointment at `start`: `lead` before it, earlier to keep out of quiet hours."""
    settings = get_settings()
    quiet, tz = settings.quiet, settings.tz
    due = start - lead
    if quiet is not None:
        due = quiet.last_allowed_before(due, tz)
    if due < now:  # booked at short notice: as soon as quiet hours allow (the job skips if that is too late)
        due = quiet.next_allowed(now, tz) if quiet is not None else now
    return due


def schedule_reminder(session: Session, booking: Booking, service: BookableService) -> None:
    """Queue the reminder of a booking (after the transaction commits), when its service has a reminder template."""
    if not service.reminder_template_id:
        return
    due = reminder_due(booking.start, timedelta(minutes=service.remind_minutes_before), utcnow())
    key = reminder_key(booking.id, booking.start)
    enqueue(send_reminder, booking.id, int(booking.start.timestamp()), at=due, job_id=key, session=session)


def schedule_progress(session: Session, booking: Booking, service: BookableService, status: str) -> None:
    """Queue a progress notice of a repair-type booking (quiet hours: it waits for their end)."""
    if not service.progress_template_id or service.kind != "repair" or status not in PROGRESS_WORDS:
        return
    settings = get_settings()
    now = utcnow()
    due = settings.quiet.next_allowed(now, settings.tz) if settings.quiet is not None else now
    enqueue(send_progress, booking.id, status, at=due, job_id=f"booking_progress:{booking.id}:{status}",
            session=session)


def _local(at: datetime) -> str:
    return at.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M")


def _openid(session: Session, member_id: int) -> str | None:
    app_id = mp_credentials(get_settings()).app_id
    return session.scalar(select(Identity.value).where(
        Identity.member_id == member_id, Identity.type == "mp_openid", Identity.scope == app_id).limit(1))


def send_reminder(booking_id: int, start_ts: int) -> str:
    """Job: remind the consumer of a booking still `booked` at that start; once (the ledger), never in quiet hours."""
    settings = get_settings()
    key = f"booking_reminder:{booking_id}:{start_ts}"
    with session_scope() as session:
        booking = session.get(Booking, booking_id)
        if booking is None or booking.status != BookingStatus.booked.value \
                or int(booking.start.timestamp()) != start_ts:
            return "not due"  # cancelled, moved on, or rescheduled (the new time has its own reminder)
        service = session.get(BookableService, booking.service_id)
        store = session.get(Store, booking.store_id)
        now = utcnow()
        quiet = settings.quiet
        skip = None
        if now >= booking.start or (quiet is not None and quiet.contains(now, settings.tz)):
            skip = "the appointment has begun" if now >= booking.start else "quiet hours until the appointment"
        openid = _openid(session, booking.member_id)
        member_id = booking.member_id
        data = {"thing1": {"value": service.name[:THING_MAX]}, "time2": {"value": _local(booking.start)},
                "thing3": {"value": store.name[:THING_MAX]}}
    if skip is not None:  # the ledger writes in a transaction of its own, after this one ended
        sends.skip(key=key, reason=skip, cause=f"booking:{booking_id}")
        return "skipped"
    return deliver(key=key, cause=f"booking:{booking_id}", member_id=member_id, openid=openid,
                   template_id=service.reminder_template_id, data=data, page=f"{PAGE}?id={booking_id}")


def send_progress(booking_id: int, status: str) -> str:
    """Job: tell the consumer a repair-type booking reached `status`, once."""
    key = f"booking_progress:{booking_id}:{status}"
    with session_scope() as session:
        booking = session.get(Booking, booking_id)
        if booking is None:
            return "not due"
        service = session.get(BookableService, booking.service_id)
        store = session.get(Store, booking.store_id)
        openid = _openid(session, booking.member_id)
        member_id = booking.member_id
        data = {"thing1": {"value": service.name[:THING_MAX]}, "phrase2": {"value": PROGRESS_WORDS[status]},
                "thing3": {"value": store.name[:THING_MAX]}}
    return deliver(key=key, cause=f"booking:{booking_id}", member_id=member_id, openid=openid,
                   template_id=service.progress_template_id, data=data, page=f"{PAGE}?id={booking_id}")


def deliver(*, key: str, cause: str, member_id: int, openid: str | None, template_id: str, data: dict,
            page: str) -> str:
    """Claim `key`, take a grant of `template_id`, send the subscribe message; 'sent', 'skipped', 'failed'…"""
    with session_scope() as session:
        row = sends.claim(session=session, key=key, cause=cause)
        if row is None:
            return "already sent"
        reason = None
        if openid is None:
            reason = "no mini-program openid"
        elif not consents.consume(session, member_id=member_id, template_id=template_id):
            reason = f"no subscribe grant of template {template_id}"
        if reason is not None:
            row.status, row.error = SendStatus.skipped.value, reason
            log.info("send %s: skipped (%s)", key, reason)
            return "skipped"
    try:
        mp_client().send_subscribe(openid, template_id, data, page=page)
    except TransportError as exc:
        sends.finish(key=key, status=SendStatus.unknown, error=str(exc))
        log.warning("send %s: outcome unknown, not retried: %s", key, exc)
        return "unknown"
    except WeChatAPIError as exc:
        sends.finish(key=key, status=SendStatus.failed, error=str(exc))
        if exc.errcode != 43101:  # refused without delivering: the grant is still the member's (43101: it is not)
            with session_scope() as session:
                consents.release(session, member_id=member_id, template_id=template_id)
        if isinstance(exc, PermanentAPIError):
            log.warning("send %s: refused for good: %s", key, exc)
            return "failed"
        raise  # busy or rate-limited: the queue retries, and the failed row may be claimed again
    except Exception as exc:  # not Tencent's answer: whether anything went out is unknown
        sends.finish(key=key, status=SendStatus.unknown, error=f"{type(exc).__name__}: {exc}")
        raise
    sends.finish(key=key, status=SendStatus.sent)
    log.info("send %s: sent", key)
    return "sent"
