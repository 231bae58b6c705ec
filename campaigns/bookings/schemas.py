"""Request and response bodies of bookings, for the admin API and the mini-program's."""
from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field, field_validator, model_validator

from campaigns.bookings.models import ServiceKind
from config.inputs import Timestamp

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
Code = Field(min_length=1, max_length=40)
Userid = Field(default=None, min_length=1, max_length=64)


def minutes(clock: str) -> int:
    """`"10:30"` → 630 (minutes after midnight; `"24:00"` is 1440)."""
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


class ServiceIn(BaseModel):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)
    duration_minutes: int = Field(ge=1, le=1440)
    price_fen: int = Field(ge=0, le=10**10)
    stores: list[str] = Field(min_length=1, max_length=500)
    kind: ServiceKind = ServiceKind.appointment
    reminder_template_id: str | None = Field(default=None, min_length=1, max_length=64)
    progress_template_id: str | None = Field(default=None, min_length=1, max_length=64)
    remind_minutes_before: int = Field(default=120, ge=0, le=10080)


class ServiceOut(BaseModel):
    id: int
    code: str
    name: str
    duration_minutes: int
    price_fen: int
    kind: str
    stores: list[str] = []
    reminder_template_id: str | None = None
    progress_template_id: str | None = None
    remind_minutes_before: int


class HoursIn(BaseModel):
    weekday: int = Field(ge=1, le=7)  # ISO: 1 = Monday
    open: str
    close: str

    @field_validator("open", "close")
    @classmethod
    def _clock(cls, v: str) -> str:
        if not _CLOCK.match(v):
            raise ValueError("a time HH:MM between 00:00 and 24:00 is required")
        return v

    @model_validator(mode="after")
    def _span(self) -> HoursIn:
        if minutes(self.open) >= minutes(self.close):
            raise ValueError(f"weekday {self.weekday}: open {self.open} must be before close {self.close}")
        return self


class ScheduleIn(BaseModel):
    hours: list[HoursIn] = Field(max_length=70)
    capacity: int = Field(ge=0, le=10000)
    staff_capacity: int = Field(default=1, ge=0, le=10000)  # seats per staff member in a slot that names them


class ScheduleOut(BaseModel):
    store: str
    hours: list[HoursIn]
    capacity: int
    staff_capacity: int


class BookingIn(BaseModel):
    store: str = Code
    service: str = Code
    start: Timestamp
    staff: str | None = Userid
    ref: str | None = Userid


class RescheduleIn(BaseModel):
    start: Timestamp
    staff: str | None = Userid


class StatusIn(BaseModel):
    status: str = Field(min_length=1, max_length=20)


class BookingOut(BaseModel):
    id: int
    status: str
    store: str
    service: str
    service_name: str
    start: datetime
    end: datetime
    staff: str | None = None
    ref: str | None = None
    member_id: int | None = None  # in the admin API only


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    staff: str | None = None
    remaining: int
