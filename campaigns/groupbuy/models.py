"""Tables of group-buy: offers, groups, orders (one per seat) and the refund ledger.

Seats and stock are counters guarded by CHECK constraints and moved only by conditional UPDATEs; an order's
status moves only by `UPDATE … WHERE status = <the state it leaves>`, so two writers never both move it.
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base
from config.types import ErrorText, JSONType, UTCDateTime, utcnow
from membership.models import BigId


class GroupStatus(str, enum.Enum):
    open = "open"
    succeeded = "succeeded"
    failed = "failed"


class OrderStatus(str, enum.Enum):
    pending = "pending"  # seat held, unpaid
    paid = "paid"
    refunding = "refunding"  # a refund is claimed in the ledger; its outcome is not known yet
    refunded = "refunded"
    released = "released"  # the hold expired (or the group failed) before a payment arrived


class RefundStatus(str, enum.Enum):
    requested = "requested"  # claimed; the call is about to be made (or the process died making it)
    unknown = "unknown"  # the call's outcome is not known: reconciled by the refund query, then retried as is
    processing = "processing"  # WeChat Pay accepted it (PROCESSING); the notification or a query settles it
    succeeded = "succeeded"
    failed = "failed"  # refused for good (ABNORMAL, CLOSED, or a permanent API error): needs a person


SEAT_HOLDING = (OrderStatus.pending.value, OrderStatus.paid.value)  # an order in one of these occupies its seat
_SEAT_SQL = "status IN ('pending', 'paid')"


def _in(enum_cls) -> str:
    return "status IN (" + ", ".join(f"'{s.value}'" for s in enum_cls) + ")"


class Offer(Base):
    """A group-buy offer: price, group size, how long a group may stay open, and seats in stock."""

    __tablename__ = "groupbuy_offers"
    __table_args__ = (
        CheckConstraint("price_fen > 0", name="price_positive"),
        CheckConstraint("original_price_fen >= price_fen", name="original_not_below_price"),
        CheckConstraint("group_size >= 2", name="group_size"),
        CheckConstraint("time_limit_minutes > 0", name="time_limit"),
        CheckConstraint("stock_taken >= 0 AND stock_taken <= stock", name="stock"),
        CheckConstraint("ends_at > starts_at", name="window"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    price_fen: Mapped[int] = mapped_column(Integer)
    original_price_fen: Mapped[int] = mapped_column(Integer)
    group_size: Mapped[int] = mapped_column(Integer)
    time_limit_minutes: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)  # seats on sale in all
    stock_taken: Mapped[int] = mapped_column(Integer, default=0)  # seats held or paid (released ones return)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stores: Mapped[list] = mapped_column(JSONType, default=list)  # store codes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Group(Base):
    """One group of an offer: `seats` held (pending or paid) and `paid` of them, never more than `size`."""

    __tablename__ = "groupbuy_groups"
    __table_args__ = (
        CheckConstraint("seats >= 0 AND seats <= size", name="seats"),
        CheckConstraint("paid >= 0 AND paid <= size", name="paid"),
        CheckConstraint(_in(GroupStatus), name="status"),
        CheckConstraint("status <> 'succeeded' OR paid = size", name="succeeded_full"),
        Index("ix_groupbuy_groups_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("groupbuy_offers.id"), index=True)
    leader_member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    # The store the group buys in: one of the offer's `stores` (none when the offer names no store).
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    size: Mapped[int] = mapped_column(Integer)
    seats: Mapped[int] = mapped_column(Integer, default=0)
    paid: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default=GroupStatus.open.value)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Order(Base):
    """One seat in one group, prepaid through Pay v3 JSAPI under its own `out_trade_no`."""

    __tablename__ = "groupbuy_orders"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint(_in(OrderStatus), name="status"),
        # A member holds at most one seat of a group (a released seat may be taken again).
        Index("uq_groupbuy_orders_seat", "group_id", "member_id", unique=True,
              postgresql_where=text(_SEAT_SQL), sqlite_where=text(_SEAT_SQL)),
        Index("ix_groupbuy_orders_status_hold", "status", "hold_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    out_trade_no: Mapped[str] = mapped_column(String(32), unique=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("groupbuy_offers.id"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groupbuy_groups.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)  # credited through `ref`
    openid: Mapped[str] = mapped_column(String(128))
    amount_fen: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=OrderStatus.pending.value)
    prepay_id: Mapped[str | None] = mapped_column(String(64))
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    late: Mapped[bool] = mapped_column(default=False)  # paid after its hold or its group ended: refunded
    hold_until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # released or refunded


class Refund(Base):
    """The refund ledger: one row per refunded order, claimed before WeChat Pay hears of it.

    `out_refund_no` is derived from the order's `out_trade_no`, so every retry of the call reuses it and WeChat
    Pay refunds the order once; the unique `order_id` makes a second claim impossible.
    """

    __tablename__ = "groupbuy_refunds"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint(_in(RefundStatus), name="status"),
        Index("ix_groupbuy_refunds_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("groupbuy_orders.id"), unique=True)
    out_refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    out_trade_no: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(12), default=RefundStatus.requested.value)
    refund_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls made (a retry reuses out_refund_no)
    error: Mapped[str | None] = mapped_column(ErrorText)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the sweeper looks after this
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
