"""The campaign spec of CONTRACT §5 as request bodies, validated so that a 422 points at the field at fault."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaigns.cron import trigger
from config.inputs import DbId, Timestamp
from config.settings import get_settings
from membership.vocabulary import EVENT_TYPES

HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
TEXT_MAX_BYTES = 4000  # add_msg_template: text.content of at most 4,000 bytes
ATTACHMENTS_MAX = 9  # ... and at most 9 attachments
MAX_DELAY_MINUTES = 90 * 24 * 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Audience(_Strict):
    segment_id: DbId


class TriggerSpec(_Strict):
    event: str
    where: dict = Field(default_factory=dict)
    delay_minutes: int = Field(default=0, ge=0, le=MAX_DELAY_MINUTES)
    reentry: bool = False  # a member may enter again with every matching event

    @field_validator("event")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in EVENT_TYPES:
            raise ValueError(f"unknown event type {v!r}")
        return v


class Schedule(_Strict):
    at: Timestamp | None = None
    cron: str | None = None
    trigger: TriggerSpec | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            trigger(v, get_settings().tz)  # ValueError names what is wrong
        return v

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        given = [k for k in ("at", "cron", "trigger") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of at, cron, trigger (or leave schedule out to launch by hand)")
        return self


class MassMessage(_Strict):
    type: Literal["wecom_mass_message"]
    text: str = Field(default="", max_length=TEXT_MAX_BYTES)
    attachments: list[dict] = Field(default_factory=list, max_length=ATTACHMENTS_MAX)

    @field_validator("text")
    @classmethod
    def _bytes(cls, v: str) -> str:
        if len(v.encode()) > TEXT_MAX_BYTES:
            raise ValueError(f"at most {TEXT_MAX_BYTES} bytes (WeCom's limit), got {len(v.encode())}")
        return v

    @model_validator(mode="after")
    def _something(self) -> MassMessage:
        if not self.text.strip() and not self.attachments:
            raise ValueError("a mass message needs text or attachments")
        return self


class QuietSpec(_Strict):
    start: str = Field(pattern=HHMM)
    end: str = Field(pattern=HHMM)


class CapSpec(_Strict):
    max: int = Field(ge=0, le=1000)  # 0: no cap
    per_days: int = Field(ge=1, le=366)


class PolicySpec(_Strict):
    quiet_hours: QuietSpec | None = None
    frequency_cap: CapSpec | None = None


class Goal(_Strict):
    event: str
    within_days: int = Field(default=7, ge=1, le=366)

    @field_validator("event")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in EVENT_TYPES:
            raise ValueError(f"unknown event type {v!r}")
        return v


class Holdout(_Strict):
    """A share of the audience never sent to, chosen by a hash of (campaign, member) at planning."""

    percent: float = Field(gt=0, le=50)


class CampaignIn(_Strict):
    """CONTRACT §5. Only `wecom_mass_message` is built so far: another action type answers 422 at action.type."""

    name: str = Field(min_length=1, max_length=120)
    audience: Audience | None = None
    schedule: Schedule | None = None
    action: MassMessage
    policy: PolicySpec | None = None
    goal: Goal | None = None  # extension: the conversion counted in stats
    holdout: Holdout | None = None  # extension: members held out, so stats show lift

    @model_validator(mode="after")
    def _audience(self) -> CampaignIn:
        if self.audience is None and (self.schedule is None or self.schedule.trigger is None):
            raise ValueError("audience: required unless the campaign is triggered by an event")
        return self


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    schedule_kind: str
    stats: dict
