"""A group's end: it succeeds when its last seat is paid, or fails at its deadline and refunds every paid seat.

Every path that changes a group's orders locks the group row first (then orders, then the offer), so a payment,
a hold release and the deadline never deadlock and never both act on one seat.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.clients import pay_client
from bot.errors import PermanentAPIError
from config.database import session_scope
from config.queue import enqueue
from config.types import utcnow
from campaigns.groupbuy import refunds
from campaigns.groupbuy.models import Group, GroupStatus, Offer, Order, OrderStatus
from membership import timeline

log = logging.getLogger(__name__)


def lock(session: Session, group_id: int) -> None:
    """Take the group's row lock (PostgreSQL) for the rest of the transaction: the one order of locking."""
    session.execute(select(Group.id).where(Group.id == group_id).with_for_update())


def schedule_deadline(session: Session, group_id: int, at: datetime) -> None:
    """Run `deadline_job` for the group at its deadline, once the session commits."""
    enqueue(deadline_job, group_id, at=at, job_id=f"groupbuy-deadline-{group_id}", session=session)


def deadline_job(group_id: int) -> str:
    """At a group's deadline: fail it unless it succeeded, refunding its paid seats; safe to run twice."""
    with session_scope() as session:
        return "failed" if fail(session, group_id=group_id) else "unchanged"


def return_stock(session: Session, offer_id: int, seats: int) -> None:
    """Put seats back on sale (released holds, refunded seats of a failed group)."""
    if seats:
        session.execute(update(Offer).where(Offer.id == offer_id).values(stock_taken=Offer.stock_taken - seats))


def fail(session: Session, *, group_id: int, now: datetime | None = None) -> bool:
    """Fail a group past its deadline that is not full of paid seats: release its holds, refund its paid seats."""
    now = now or utcnow()
    lock(session, group_id)
    group = session.execute(
        update(Group).where(Group.id == group_id, Group.status == GroupStatus.open.value, Group.expires_at <= now,
                            Group.paid < Group.size)
        .values(status=GroupStatus.failed.value, closed_at=now).returning(Group.offer_id)).first()
    if group is None:
        return False
    released = session.execute(
        update(Order).where(Order.group_id == group_id, Order.status == OrderStatus.pending.value)
        .values(status=OrderStatus.released.value, closed_at=now).returning(Order.out_trade_no)).all()
    paid = session.execute(
        update(Order).where(Order.group_id == group_id, Order.status == OrderStatus.paid.value)
        .values(status=OrderStatus.refunding.value)
        .returning(Order.id, Order.out_trade_no, Order.amount_fen, Order.member_id, Order.staff_id)).all()
    return_stock(session, group.offer_id, len(released) + len(paid))
    for order in paid:
        refunds.claim(session, order_id=order.id, out_trade_no=order.out_trade_no, amount_fen=order.amount_fen,
                      reason="拼团未成团")
        timeline.record_event(session, order.member_id, "groupbuy.failed", {
            "offer_id": group.offer_id, "group_id": group_id, "out_trade_no": order.out_trade_no},
            dedupe_key=f"groupbuy:failed:{order.id}")
    for (out_trade_no,) in released:
        enqueue(close_pay_order, out_trade_no, session=session, retries=1)
    log.info("group %s: failed at its deadline; %d paid seats refunded, %d holds released", group_id, len(paid),
             len(released))
    return True


def succeed_if_full(session: Session, *, group_id: int, now: datetime | None = None) -> bool:
    """Mark an open group whose every seat is paid as succeeded, telling each member; False otherwise."""
    now = now or utcnow()
    done = session.execute(
        update(Group).where(Group.id == group_id, Group.status == GroupStatus.open.value, Group.paid == Group.size)
        .values(status=GroupStatus.succeeded.value, closed_at=now).returning(Group.offer_id)).first()
    if done is None:
        return False
    for order_id, member_id, out_trade_no in session.execute(
            select(Order.id, Order.member_id, Order.out_trade_no)
            .where(Order.group_id == group_id, Order.status == OrderStatus.paid.value)):
        timeline.record_event(session, member_id, "groupbuy.succeeded", {
            "offer_id": done.offer_id, "group_id": group_id, "out_trade_no": out_trade_no},
            dedupe_key=f"groupbuy:succeeded:{order_id}")
    log.info("group %s: succeeded", group_id)
    return True


def close_pay_order(out_trade_no: str) -> None:
    """Close a released order at WeChat Pay, so it takes no late payment (one that still comes is refunded)."""
    try:
        pay_client().close_order(out_trade_no)
    except PermanentAPIError as exc:
        if exc.errcode not in ("ORDERPAID", "ORDER_NOT_EXIST", "ORDERNOTEXIST", "RESOURCE_NOT_EXISTS"):
            raise
        log.info("order %s: not closed at WeChat Pay (%s)", out_trade_no, exc.errcode)


def due(session: Session, limit: int = 500) -> list[int]:
    """Open groups past their deadline (their job was lost: a restart in embedded mode, a flushed Redis)."""
    return list(session.scalars(select(Group.id).where(Group.status == GroupStatus.open.value,
                                                       Group.expires_at <= utcnow())
                                .order_by(Group.id).limit(limit)))


def counts(session: Session, offer_id: int) -> dict[str, int]:
    """How many groups of an offer are in each status."""
    rows = session.execute(select(Group.status, func.count()).where(Group.offer_id == offer_id)
                           .group_by(Group.status)).all()
    return {status.value: 0 for status in GroupStatus} | {status: n for status, n in rows}
