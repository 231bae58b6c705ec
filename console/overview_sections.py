"""概览's commerce sections: campaign funnels, group-buy revenue and refunds, bookings by state, each in a fixed
number of statements whatever the data (the overview page lays them out as charts with their numbers).

Scope is the page's: `store_id` is the store shown (None: every store, only for admins and marketers); group-buy
counts the orders of that store's members, as the console's 拼团 pages and the API scope a store manager; bookings
are the store's own, as on the 预约 calendar.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, literal_column, or_, select, union_all
from sqlalchemy.orm import Session

from campaigns.bookings.models import Booking, BookingStatus
from campaigns.groupbuy.models import Group, GroupStatus, Order, Refund, RefundStatus
from campaigns.models import Campaign, CampaignStatus
from campaigns.stats import campaign_stats
from config.settings import get_settings
from console.campaign_results import FUNNEL, LABELS
from console.bookings import STATUS_LABELS
from membership.models import Member
from membership.stats import local_day

FUNNELS_SHOWN = 5  # campaigns on the overview: campaign_stats is a handful of statements each, so at most 5 calls
STILL_ON = (CampaignStatus.scheduled.value, CampaignStatus.running.value, CampaignStatus.paused.value)


def bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """The period's first instant and the instant after it, business days in SIYU_TIMEZONE."""
    tz = get_settings().tz
    return (datetime.combine(since, datetime.min.time(), tz),
            datetime.combine(until + timedelta(days=1), datetime.min.time(), tz))


def campaign_funnels(session: Session, *, since: date, until: date, store_code: str = "",
                     staff_userid: str = "") -> list[dict]:
    """The most recent campaigns active in the period (launched before its end and still on, or touched in it),
    each with the funnel campaigns.stats gives, of the store or staff member chosen when one is."""
    start, end = bounds(since, until)
    rows = session.scalars(select(Campaign).where(
        Campaign.launched_at.is_not(None), Campaign.launched_at < end,
        or_(Campaign.status.in_(STILL_ON), Campaign.updated_at >= start))
        .order_by(Campaign.launched_at.desc(), Campaign.id.desc()).limit(FUNNELS_SHOWN)).all()
    funnels = []
    for campaign in rows:  # at most FUNNELS_SHOWN calls of a fixed number of statements each
        stats = campaign_stats(session, campaign)
        if staff_userid:
            stats = stats["per_staff"].get(staff_userid, {})
        elif store_code:
            stats = stats["per_store"].get(store_code, {})
        values = [stats.get(k, 0) for k in FUNNEL]
        funnels.append({"id": campaign.id, "name": campaign.name, "status": campaign.status, "values": values,
                        "chart": {"kind": "funnel", "labels": [LABELS[k] for k in FUNNEL], "values": values}})
    return funnels


@dataclass
class GroupBuyDay:
    """One business day of group-buy: paid and refunded amounts (fen) and counts, groups closed."""

    day: date
    paid_fen: int = 0
    paid: int = 0
    refunded_fen: int = 0
    refunded: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass
class GroupBuyFigures:
    """Group-buy per day of the period, and its totals."""

    days: list[GroupBuyDay]
    totals: GroupBuyDay


def group_buy(session: Session, *, since: date, until: date, store_id: int | None) -> GroupBuyFigures:
    """Per day of the period: orders paid (their amounts), refunds that succeeded, groups that succeeded or
    failed (those with an order of the store's members), in one statement."""
    start, end = bounds(since, until)
    tz = get_settings().tz
    mine = None if store_id is None else select(Member.id).where(Member.store_id == store_id)
    paid = (select(local_day(session, Order.paid_at, tz).label("day"), literal_column("'paid'").label("kind"),
                   func.count().label("n"), func.coalesce(func.sum(Order.amount_fen), 0).label("fen"))
            .where(Order.paid_at >= start, Order.paid_at < end))
    refunded = (select(local_day(session, Refund.settled_at, tz), literal_column("'refunded'"), func.count(),
                       func.coalesce(func.sum(Refund.amount_fen), 0)).join(Order, Order.id == Refund.order_id)
                .where(Refund.status == RefundStatus.succeeded.value, Refund.settled_at >= start,
                       Refund.settled_at < end))
    closed = (select(local_day(session, Group.closed_at, tz), Group.status, func.count(), literal_column("0"))
              .where(Group.status.in_((GroupStatus.succeeded.value, GroupStatus.failed.value)),
                     Group.closed_at >= start, Group.closed_at < end))
    if mine is not None:
        paid = paid.where(Order.member_id.in_(mine))
        refunded = refunded.where(Order.member_id.in_(mine))
        closed = closed.where(Group.id.in_(select(Order.group_id).where(Order.member_id.in_(mine))))
    paid, refunded = paid.group_by(literal_column("1")), refunded.group_by(literal_column("1"))
    closed = closed.group_by(literal_column("1"), Group.status)
    figures = {since + timedelta(days=i): GroupBuyDay(since + timedelta(days=i))
               for i in range((until - since).days + 1)}
    totals = GroupBuyDay(date.min)
    for day, kind, n, fen in session.execute(union_all(paid, refunded, closed)):
        for bucket in (figures.get(date.fromisoformat(day)), totals):
            if bucket is None:
                continue
            if kind == "paid":
                bucket.paid, bucket.paid_fen = bucket.paid + n, bucket.paid_fen + fen
            elif kind == "refunded":
                bucket.refunded, bucket.refunded_fen = bucket.refunded + n, bucket.refunded_fen + fen
            else:
                setattr(bucket, kind, getattr(bucket, kind) + n)
    return GroupBuyFigures(days=list(figures.values()), totals=totals)


def bookings_by_state(session: Session, *, since: date, until: date, store_id: int | None) -> dict[str, int]:
    """Bookings made in the period by the state they are in now (every state, zeros included), in one statement:
    the period ends today, and bookings are mostly for days to come, so it is when they were made that counts."""
    start, end = bounds(since, until)
    q = (select(Booking.status, func.count()).where(Booking.created_at >= start, Booking.created_at < end)
         .group_by(Booking.status))
    if store_id is not None:
        q = q.where(Booking.store_id == store_id)
    found = dict(session.execute(q).all())
    return {s.value: found.get(s.value, 0) for s in BookingStatus}


def charts(funnels: list[dict], buys: GroupBuyFigures, states: dict[str, int]) -> dict:
    """The sections' chart specs (console/static/charts.js draws them)."""
    out = {f"funnel-{f['id']}": f["chart"] for f in funnels}
    out["groupbuy"] = {"kind": "money", "days": [d.day.isoformat() for d in buys.days],
                       "paid": [d.paid_fen / 100 for d in buys.days],
                       "refunded": [d.refunded_fen / 100 for d in buys.days]}
    out["bookings"] = {"kind": "bar", "labels": [STATUS_LABELS[s] for s in states], "values": list(states.values())}
    return out
