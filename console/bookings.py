"""预约: a store's day and week calendar with capacity and each booking's state; a store manager moves bookings
along CONTRACT §7 from here (the transitions and the 409 of PATCH /api/v1/bookings/{id}).

A store manager sees and moves their own store's bookings (another store is 404, as in the API); admins and
marketers read every store's; admins move them too (marketers may not, as PATCH answers them 403).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from fastapi import Depends, Query, Request
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from campaigns.bookings import capacity, catalog, service
from campaigns.bookings.models import ACTIVE, BookableService, Booking, CapacityUnit
from config.database import request_session
from config.errors import NotFound
from config.inputs import DbId
from config.settings import get_settings
from config.types import utcnow
from console.paging import decode_time_cursor, time_cursor
from console.web import console_router, is_htmx, poster, render, viewer_of
from membership import service as members
from membership.access import Principal
from membership.models import Member, Role, Staff, Store

router = console_router()
reader = viewer_of(Role.marketer, Role.store_manager)
mover = poster(Role.store_manager)
PAGE = 50  # bookings of a day per page
WEEK_SHOWN = 12  # bookings shown per day of the week view (the day view has them all)
STATUS_LABELS = {"booked": "已预约", "checked_in": "已到店", "in_service": "服务中", "ready": "待取件",
                 "completed": "已完成", "cancelled": "已取消", "no_show": "未到店"}
WEEKDAYS = "一二三四五六日"


def _store(session: Session, who: Principal, code: str) -> Store:
    """The store the calendar shows: a store manager's own (another is 404); for the others `code` or the first."""
    if not who.allows(Role.marketer):
        own = session.get(Store, who.store_id) if who.store_id else None
        if own is None or (code and code != own.code):
            raise NotFound(f"store {code!r} not found")
        return own
    if code:
        return members.get_store_by_code(session, code)
    first = session.scalar(select(Store).order_by(Store.code).limit(1))
    if first is None:
        raise NotFound("no store yet")
    return first


def _utc_midnight(day: date) -> datetime:
    tz = get_settings().tz
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)


def _rows(store_id: int):
    """Bookings of a store with what the calendar shows of each, in one statement."""
    return (select(Booking.id, Booking.start, Booking.end, Booking.status, Booking.member_id,
                   Member.name.label("member"), BookableService.name.label("service"), Staff.name.label("staff"))
            .join(Member, Member.id == Booking.member_id)
            .join(BookableService, BookableService.id == Booking.service_id)
            .outerjoin(Staff, Staff.id == Booking.staff_id).where(Booking.store_id == store_id))


def _day_page(session: Session, store: Store, day: date, cursor: str | None):
    begin = _utc_midnight(day)
    q = _rows(store.id).where(Booking.start >= begin, Booking.start < _utc_midnight(day + timedelta(days=1)))
    at, last_id = decode_time_cursor(cursor)
    if at is not None:
        q = q.where((Booking.start > at) | and_(Booking.start == at, Booking.id > last_id))
    rows = session.execute(q.order_by(Booking.start, Booking.id).limit(PAGE + 1)).all()
    page = rows[:PAGE]
    return page, time_cursor(page[-1].start, page[-1].id) if len(rows) > PAGE else None


def _capacity(session: Session, store: Store, begin: datetime, end: datetime) -> list:
    """Per booked time and service in [begin, end): the store's busiest five-minute unit within it, of capacity.

    Services of any length share the store's units (campaigns.bookings.capacity), so a row reads "at the fullest
    moment of this booking's time, so many of the store's seats were taken".
    """
    c, b = CapacityUnit, Booking
    return session.execute(
        select(b.start, BookableService.name.label("service"), func.max(c.booked).label("booked"),
               func.max(c.capacity).label("capacity"))
        .join(BookableService, BookableService.id == b.service_id)
        .join(c, (c.store_id == b.store_id) & (c.staff_key == capacity.STORE_KEY) & (c.at >= b.start) & (c.at < b.end))
        .where(b.store_id == store.id, b.status.in_(ACTIVE), b.start >= begin, b.start < end)
        .group_by(b.start, BookableService.name)
        .order_by(b.start, BookableService.name)).all()


def _week(session: Session, store: Store, monday: date) -> list[dict]:
    """Seven days: the first WEEK_SHOWN bookings of each and how many there are in all (two statements)."""
    bounds = [_utc_midnight(monday + timedelta(days=i)) for i in range(8)]
    index = case(*[(Booking.start < bounds[i + 1], i) for i in range(7)], else_=7)
    base = _rows(store.id).where(Booking.start >= bounds[0], Booking.start < bounds[7])
    ranked = base.add_columns(index.label("day"), func.row_number().over(
        partition_by=index, order_by=(Booking.start, Booking.id)).label("n")).subquery()
    rows = session.execute(select(ranked).where(ranked.c.n <= WEEK_SHOWN).order_by(ranked.c.start, ranked.c.id)).all()
    counts = dict(session.execute(select(index, func.count()).where(
        Booking.store_id == store.id, Booking.start >= bounds[0], Booking.start < bounds[7]).group_by(index)).all())
    today = utcnow().astimezone(get_settings().tz).date()
    days = [{"date": monday + timedelta(days=i), "label": f"周{WEEKDAYS[i]}", "rows": [], "count": counts.get(i, 0),
             "today": monday + timedelta(days=i) == today} for i in range(7)]
    for row in rows:
        days[row.day]["rows"].append(row)
    return days


def _moves(who: Principal) -> dict[str, list[str]]:
    """The moves offered from each state (CONTRACT §7, as PATCH checks them); none for who may not move."""
    if not who.allows(Role.store_manager):
        return {}
    return {str(s.value): sorted(t.value for t in targets) for s, targets in service.MOVES.items()}


@router.get("/bookings")
def calendar(request: Request, store: str = "", day: date | None = Query(None, alias="date"), view: str = "day",
             cursor: str | None = None, session: Session = request_session, who: Principal = Depends(reader)):
    """A store's calendar: a day (bookings paged by cursor, seats per slot) or a week (seven columns)."""
    store_row = _store(session, who, store.strip())
    day = day or utcnow().astimezone(get_settings().tz).date()
    view = "week" if view == "week" else "day"
    schedule, hours = catalog.schedule_of(session, store_row)
    context = {"store": store_row, "day": day, "view": view, "timedelta": timedelta, "schedule": schedule,
               "labels": STATUS_LABELS,
               "moves": _moves(who), "stores": members.list_stores(session) if who.allows(Role.marketer) else [],
               "hours": [h for h in hours if h.weekday == day.isoweekday()], "all_hours": hours}
    if view == "week":
        monday = day - timedelta(days=day.weekday())
        context.update(monday=monday, days=_week(session, store_row, monday),
                       capacity=_capacity(session, store_row, _utc_midnight(monday),
                                          _utc_midnight(monday + timedelta(days=7))))
        return render(request, "bookings_week.html", **context)
    rows, next_cursor = _day_page(session, store_row, day, cursor)
    context.update(rows=rows, next_cursor=next_cursor)
    if is_htmx(request) and cursor:
        return render(request, "bookings_rows.html", **context)
    context["capacity"] = _capacity(session, store_row, _utc_midnight(day), _utc_midnight(day + timedelta(days=1)))
    return render(request, "bookings_day.html", **context)


@router.post("/bookings/{booking_id}/move")
def move(request: Request, booking_id: DbId, session: Session = request_session, who: Principal = Depends(mover)):
    """Move a booking to the status the button names; an illegal move is the API's 409, another store's 404."""
    form = request.state.form
    own = None if who.allows() else (who.store_id or -1)
    booking = service.move(session, booking_id=booking_id, to=form.get("status", ""), store_id=own)
    row = session.execute(_rows(booking.store_id).where(Booking.id == booking.id)).one()
    template = "booking_card.html" if form.get("view") == "week" else "bookings_rows.html"
    return render(request, template, rows=[row], b=row, labels=STATUS_LABELS, moves=_moves(who), next_cursor=None,
                  view=form.get("view", "day"))
