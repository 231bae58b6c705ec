"""Request and response bodies of the consumer API's member card."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from campaigns.bookings.schemas import BookingOut


class CodeIn(BaseModel):
    code: str = Field(min_length=1, max_length=128)


class SessionOut(BaseModel):
    token: str
    member_id: int


class PhoneOut(BaseModel):
    phone_masked: str


class StoreRef(BaseModel):
    code: str
    name: str


class CardOut(BaseModel):
    member_id: int
    name: str | None
    store: StoreRef | None
    tags: list[str]  # only the catalogue's tags marked visible_to_member
    phone_masked: str | None = None
    bookings: list[BookingOut]
    orders: list[dict[str, Any]]


class SubscriptionsIn(BaseModel):
    """What `wx.requestSubscribeMessage` answered: template id → accept | reject | ban | filter."""

    templates: dict[str, Literal["accept", "reject", "ban", "filter"]] = Field(max_length=20)


class SubscriptionsOut(BaseModel):
    remaining: dict[str, int]
