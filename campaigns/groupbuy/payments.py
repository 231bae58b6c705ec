"""Pay notifications applied to group-buy orders (bound to the intake by siyu.wiring): paid once, late ones refunded.

A payment moves its order `pending → paid` with one conditional UPDATE, so the same notification delivered
15 times (or stored twice) pays it once. A payment for an order that is no longer pending (its hold ended or its
group failed, so its seat is gone) is refunded automatically.
"""
from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.types import utcnow
from campaigns.groupbuy import groups, refunds
from campaigns.groupbuy.models import Group, GroupStatus, Order, OrderStatus
from membership import timeline
from membership.models import Staff

log = logging.getLogger(__name__)


def expected_amount(session: Session, out_trade_no: str) -> int | None:
    """The amount (fen) of a group-buy order, for checking a payment notification before it is answered."""
    return session.scalar(select(Order.amount_fen).where(Order.out_trade_no == out_trade_no))


def on_notification(session: Session, event_type: str, resource: dict) -> None:
    """Apply an accepted Pay notification that names a group-buy order or refund; ignore any other."""
    if event_type == "TRANSACTION.SUCCESS":
        apply_payment(session, out_trade_no=str(resource.get("out_trade_no") or ""),
                      transaction_id=str(resource.get("transaction_id") or ""))
    elif event_type.startswith("REFUND."):
        refunds.settle_by_number(session, out_refund_no=str(resource.get("out_refund_no") or ""),
                                 refund_status=str(resource.get("refund_status") or ""),
                                 wechat_refund_id=resource.get("refund_id"))


def apply_payment(session: Session, *, out_trade_no: str, transaction_id: str) -> str:
    """Record one payment of an order: `paid` (the group may succeed), `late` (refunded) or `duplicate`."""
    order = session.execute(select(Order.id, Order.group_id).where(Order.out_trade_no == out_trade_no)).first()
    if order is None:
        return "missing"
    now = utcnow()
    groups.lock(session, order.group_id)
    values = {"paid_at": now, "transaction_id": transaction_id[:64]}
    paid = session.execute(
        update(Order).where(Order.id == order.id, Order.status == OrderStatus.pending.value)
        .values(status=OrderStatus.paid.value, **values)
        .returning(Order.member_id, Order.amount_fen, Order.offer_id, Order.staff_id)).first()
    if paid is not None:
        # A pending order's group is open: the deadline releases every pending seat of a group it fails.
        seat = session.execute(update(Group).where(Group.id == order.group_id, Group.status == GroupStatus.open.value)
                               .values(paid=Group.paid + 1).returning(Group.paid, Group.size)).first()
        _paid_event(session, order.id, order.group_id, out_trade_no, paid, late=False)
        if seat is not None and seat.paid == seat.size:
            groups.succeed_if_full(session, group_id=order.group_id, now=now)
        return "paid"
    late = session.execute(
        update(Order).where(Order.id == order.id, Order.status == OrderStatus.released.value)
        .values(status=OrderStatus.refunding.value, late=True, **values)
        .returning(Order.member_id, Order.amount_fen, Order.offer_id, Order.staff_id)).first()
    if late is None:
        log.info("order %s: payment already applied", out_trade_no)
        return "duplicate"
    log.warning("order %s: paid after its seat was released; refunding", out_trade_no)
    _paid_event(session, order.id, order.group_id, out_trade_no, late, late=True)
    refunds.claim(session, order_id=order.id, out_trade_no=out_trade_no, amount_fen=late.amount_fen,
                  reason="支付时座位已释放")
    return "late"


def _paid_event(session: Session, order_id: int, group_id: int, out_trade_no: str, row, *, late: bool) -> None:
    # The money came in either way: total_spent_fen follows it, and its refund takes it out again.
    staff = session.scalar(select(Staff.userid).where(Staff.id == row.staff_id)) if row.staff_id else None
    data = {"offer_id": row.offer_id, "group_id": group_id, "out_trade_no": out_trade_no,
            "amount_fen": row.amount_fen, "staff": staff}
    if late:
        data["late"] = True
    timeline.record_event(session, row.member_id, "groupbuy.paid", data, dedupe_key=f"groupbuy:paid:{order_id}")
