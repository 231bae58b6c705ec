"""Request and response bodies of POST /api/v1/staff/{userid}/transfer and GET …/transfers."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

ExternalUserId = Annotated[str, Field(min_length=1, max_length=64)]
MAX_CUSTOMERS = 10000  # per request; WeCom gets them 100 a call


class TransferIn(BaseModel):
    to: str = Field(min_length=1, max_length=64)  # the takeover staff member's userid
    customers: list[ExternalUserId] | None = Field(default=None, min_length=1, max_length=MAX_CUSTOMERS)
    resigned: bool | None = None  # absent: 离职继承 when Siyu knows the staff member as inactive
    transfer_success_msg: str | None = Field(default=None, min_length=1, max_length=200)  # 在职继承 only


class CustomerTransferOut(BaseModel):
    external_userid: str
    transfer_id: int
    status: str
    errcode: int | None = None
    reason: str | None = None
    takeover_at: datetime | None = None  # taken over, or when WeCom will do it unless the customer refuses


class TransferOut(BaseModel):
    batch: str
    handover: str
    takeover: str
    resigned: bool
    customers: list[CustomerTransferOut]


class TransferRowOut(CustomerTransferOut):
    batch: str
    handover: str
    takeover: str
    resigned: bool
    requested_at: datetime
    settled_at: datetime | None = None


class TransferPage(BaseModel):
    items: list[TransferRowOut]
    next_cursor: str | None
