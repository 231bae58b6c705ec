"""Bodies of group-buy, admin side and consumer side (CONTRACT "Bodies of the commerce endpoints")."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from config.inputs import Timestamp

MAX_FEN = 100_000_000  # ¥1,000,000: far above any group-buy price, far below an INTEGER's limit
Ref = Field(default=None, min_length=1, max_length=64, description="WeCom userid of the inviting staff member")


class OfferIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    price_fen: int = Field(gt=0, le=MAX_FEN)
    original_price_fen: int = Field(gt=0, le=MAX_FEN)
    group_size: int = Field(ge=2, le=100)
    time_limit_minutes: int = Field(ge=1, le=30 * 24 * 60)
    stock: int = Field(ge=1, le=10_000_000, description="seats on sale in all")
    starts_at: Timestamp
    ends_at: Timestamp
    stores: list[str] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> OfferIn:
        if self.original_price_fen < self.price_fen:
            raise ValueError("original_price_fen must not be below price_fen")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class GroupOut(BaseModel):
    id: int
    store: str | None  # code of the store the group buys in
    status: str
    size: int
    seats: int
    paid: int
    expires_at: datetime


class OfferOut(BaseModel):
    id: int
    name: str
    price_fen: int
    original_price_fen: int
    group_size: int
    time_limit_minutes: int
    stock: int
    remaining: int  # seats neither held nor paid
    starts_at: datetime
    ends_at: datetime
    stores: list[str]


class StaffCredit(BaseModel):
    orders: int
    paid: int  # orders of theirs that were paid and not refunded
    paid_fen: int


class OfferStats(BaseModel):
    groups: dict[str, int]  # status -> groups
    orders: dict[str, int]  # status -> orders
    by_staff: dict[str, StaffCredit]  # userid (of `ref`) -> their credit


class AdminOfferOut(OfferOut):
    stats: OfferStats


class ConsumerOfferOut(OfferOut):
    groups: list[GroupOut]  # open groups with a free seat, soonest deadline first


class RefIn(BaseModel):
    ref: str | None = Ref
    store: str | None = Field(default=None, min_length=1, max_length=40,
                              description="code of the store the group buys in (default: the member's own store)")


class OrderPay(BaseModel):
    out_trade_no: str
    amount_fen: int
    pay_params: dict[str, str]  # timeStamp, nonceStr, package, signType, paySign: for wx.requestPayment as is


class SeatOut(BaseModel):
    group_id: int
    order: OrderPay


class OrderGroup(BaseModel):
    id: int
    status: str
    size: int
    paid: int


class OrderOut(BaseModel):
    out_trade_no: str
    status: str
    amount_fen: int
    group: OrderGroup
