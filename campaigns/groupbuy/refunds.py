"""The refund ledger: a refund is claimed (one row per order) before WeChat Pay hears of it, then settled.

The call reuses `out_refund_no` on every attempt, so WeChat Pay refunds an order once however often it is asked.
A call whose outcome is not known leaves the row `unknown`; the next attempt asks the refund query first and
calls again (same `out_refund_no`) only when WeChat Pay has no such refund. `processing` rows are settled by
the refund notification or by the query.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.clients import pay_client
from bot.errors import PermanentAPIError, WeChatAPIError
from config.database import session_scope, upsert
from config.queue import enqueue
from config.settings import get_settings
from config.types import utcnow
from campaigns.groupbuy.models import Order, OrderStatus, Refund, RefundStatus
from membership import timeline

log = logging.getLogger(__name__)

OPEN = (RefundStatus.requested.value, RefundStatus.unknown.value, RefundStatus.processing.value)
CHECK_AFTER = timedelta(minutes=1)  # a `processing` refund is queried again after this
RETRYABLE = {"SYSTEM_ERROR", "FREQUENCY_LIMITED", "NOT_ENOUGH"}  # Pay's codes for "try the same call later"
# WeChat Pay's refund_status → the ledger's status
SETTLED = {"SUCCESS": RefundStatus.succeeded, "PROCESSING": RefundStatus.processing,
           "ABNORMAL": RefundStatus.failed, "CLOSED": RefundStatus.failed}


def refund_no(out_trade_no: str) -> str:
    """The one `out_refund_no` of an order: derived from its own `out_trade_no`, so every retry reuses it."""
    return f"R{out_trade_no}"


def claim(session: Session, *, order_id: int, out_trade_no: str, amount_fen: int, reason: str) -> int | None:
    """Claim the refund of an order (its refund job runs once the session commits); None when it was claimed before."""
    refund_id = upsert(session, Refund.__table__, {
        "order_id": order_id, "out_refund_no": refund_no(out_trade_no), "out_trade_no": out_trade_no,
        "amount_fen": amount_fen, "reason": reason[:80], "status": RefundStatus.requested.value, "attempts": 0,
        "due_at": utcnow(), "created_at": utcnow(),
    }, ["order_id"], returning=Refund.id)
    if refund_id is not None:
        log.info("refund %s: claimed for order %s (%s)", refund_no(out_trade_no), out_trade_no, reason)
        enqueue(refund_job, refund_id, job_id=f"groupbuy-refund-{refund_id}", session=session)
    return refund_id


def refund_job(refund_id: int) -> str:
    """Make (or reconcile) one claimed refund; safe to run twice, the same `out_refund_no` every time."""
    with session_scope() as session:
        row = session.get(Refund, refund_id)
        if row is None or row.status not in OPEN:
            return row.status if row else "missing"
        status, no = row.status, row.out_refund_no
    if status in (RefundStatus.unknown.value, RefundStatus.processing.value):
        try:
            answer = pay_client().query_refund(no)
        except PermanentAPIError as exc:
            if exc.errcode != "RESOURCE_NOT_EXISTS" or status == RefundStatus.processing.value:
                raise
            answer = None  # WeChat Pay never took the earlier call: make it again, same out_refund_no
        if answer is not None:
            return _record_answer(refund_id, answer)
    return _call(refund_id)


def _call(refund_id: int) -> str:
    # The attempt is marked `unknown` before the call: a process that dies in it leaves a row to reconcile.
    with session_scope() as session:
        row = session.execute(
            update(Refund).where(Refund.id == refund_id, Refund.status.in_(
                (RefundStatus.requested.value, RefundStatus.unknown.value)))
            .values(status=RefundStatus.unknown.value, attempts=Refund.attempts + 1,
                    due_at=utcnow() + timedelta(minutes=5))
            .returning(Refund.out_refund_no, Refund.out_trade_no, Refund.amount_fen, Refund.reason)).first()
    if row is None:
        return "settled"
    no, out_trade_no, amount, reason = row
    notify_url = f"{get_settings().public_url}webhooks/wechatpay"
    try:
        answer = pay_client().refund(out_trade_no, no, amount, amount, reason=reason, notify_url=notify_url)
    except PermanentAPIError as exc:
        if exc.errcode in RETRYABLE:
            raise  # stays unknown: the queue (or the sweeper) tries again, with the same out_refund_no
        _fail(refund_id, str(exc))
        log.error("refund %s: refused by WeChat Pay for good: %s", no, exc)
        return RefundStatus.failed.value
    except WeChatAPIError as exc:
        log.warning("refund %s: outcome unknown (%s); reconciled by the refund query", no, exc)
        raise
    return _record_answer(refund_id, answer)


def _record_answer(refund_id: int, answer: dict) -> str:
    with session_scope() as session:
        return settle(session, refund_id=refund_id, refund_status=str(answer.get("status") or ""),
                      wechat_refund_id=answer.get("refund_id"))


def _fail(refund_id: int, error: str) -> None:
    with session_scope() as session:
        session.execute(update(Refund).where(Refund.id == refund_id, Refund.status.in_(OPEN)).values(
            status=RefundStatus.failed.value, error=error[-2000:], settled_at=utcnow()))


def settle(session: Session, *, refund_id: int, refund_status: str, wechat_refund_id: str | None = None) -> str:
    """Apply WeChat Pay's word on a refund (answer, query or notification); the order is refunded exactly once."""
    target = SETTLED.get(refund_status)
    if target is None:
        log.warning("refund #%s: unknown refund_status %r, left as it is", refund_id, refund_status[:20])
        return "ignored"
    now = utcnow()
    if target is RefundStatus.processing:
        session.execute(update(Refund).where(Refund.id == refund_id, Refund.status.in_(OPEN)).values(
            status=target.value, refund_id=wechat_refund_id, due_at=now + CHECK_AFTER))
        enqueue(refund_job, refund_id, in_=CHECK_AFTER, job_id=f"groupbuy-refund-{refund_id}-check", session=session)
        return target.value
    if target is RefundStatus.failed:
        session.execute(update(Refund).where(Refund.id == refund_id, Refund.status.in_(OPEN)).values(
            status=target.value, refund_id=wechat_refund_id, error=f"WeChat Pay: {refund_status}",
            settled_at=now))
        log.error("refund #%s: %s at WeChat Pay, needs a person", refund_id, refund_status)
        return target.value
    done = session.execute(update(Refund).where(Refund.id == refund_id, Refund.status.in_(OPEN)).values(
        status=target.value, refund_id=wechat_refund_id, settled_at=now).returning(Refund.order_id)).first()
    if done is None:
        return "settled"
    order = session.execute(update(Order).where(Order.id == done.order_id,
                                                Order.status == OrderStatus.refunding.value)
                            .values(status=OrderStatus.refunded.value, closed_at=now)
                            .returning(Order.member_id, Order.amount_fen, Order.out_trade_no, Order.group_id,
                                       Order.offer_id)).first()
    if order is not None:
        timeline.record_event(session, order.member_id, "groupbuy.refunded", {
            "offer_id": order.offer_id, "group_id": order.group_id, "out_trade_no": order.out_trade_no,
            "amount_fen": order.amount_fen}, dedupe_key=f"groupbuy:refunded:{done.order_id}")
    return target.value


def settle_by_number(session: Session, *, out_refund_no: str, refund_status: str,
                     wechat_refund_id: str | None = None) -> str:
    """`settle` for a refund notification, which names the refund by `out_refund_no`."""
    refund_id = session.scalar(select(Refund.id).where(Refund.out_refund_no == out_refund_no))
    if refund_id is None:
        return "missing"
    return settle(session, refund_id=refund_id, refund_status=refund_status, wechat_refund_id=wechat_refund_id)


def due(session: Session, limit: int = 500) -> list[int]:
    """Open refunds whose job should have settled them by now (lost, failed for good, or still processing)."""
    return list(session.scalars(select(Refund.id).where(Refund.status.in_(OPEN), Refund.due_at <= utcnow())
                                .order_by(Refund.id).limit(limit)))


def expected(session: Session, out_refund_no: str) -> tuple[str, int] | None:
    """(out_trade_no, refund fen) of a refund in the ledger, for checking a refund notification before answering."""
    row = session.execute(select(Refund.out_trade_no, Refund.amount_fen)
                          .where(Refund.out_refund_no == out_refund_no)).first()
    return (row.out_trade_no, row.amount_fen) if row else None
