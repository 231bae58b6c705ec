"""The campaign spec of CONTRACT §5 as request bodies, validated so that a 422 points at the field at fault."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from bot.miniprogram import SUBSCRIBE_VALUE_LIMITS
from campaigns.channels import INVITES
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


TASK_TITLE_MAX = 26  # template_card main_title.title: WeCom shows up to 26 characters
TASK_DESCRIPTION_MAX = 112  # ... and sub_title_text up to 112
TASK_DUE_MAX_HOURS = 30 * 24


class StaffTaskSpec(_Strict):
    """`wecom_staff_task`: a task card per owning staff member listing their customers in the audience."""

    type: Literal["wecom_staff_task"]
    title: str = Field(min_length=1, max_length=TASK_TITLE_MAX)
    description: str = Field(default="", max_length=TASK_DESCRIPTION_MAX)
    due_in_hours: int = Field(ge=1, le=TASK_DUE_MAX_HOURS)

    @field_validator("title")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a task needs a title")
        return v.strip()


# -- oa_template, mp_subscribe and the invites (CONTRACT §5) --------------------------------------------------
TEMPLATE_ID_MAX = 64
PAGE_MAX = 1024  # a mini-program page path with its query
OA_VALUE_MAX = 200  # an old-style template keyword (first, keyword1, remark…) has no kind to limit it by


class DataValue(_Strict):
    value: str = Field(min_length=1)
    color: str | None = Field(default=None, pattern=r"^#[0-9A-Fa-f]{6}$")


def _data_limits(data: dict[str, DataValue], *, kinds_required: bool) -> dict[str, DataValue]:
    """Tencent's per-kind limits (thing ≤ 20 characters, …): a value over them is refused with 47003."""
    if not data:
        raise ValueError("at least one keyword is required")
    for key, entry in data.items():
        kind = key.rstrip("0123456789")
        limit = SUBSCRIBE_VALUE_LIMITS.get(kind)
        if limit is None and kinds_required:
            raise ValueError(f"{key}: not a subscribe-message keyword (thing1, time2, amount3, …)")
        if len(entry.value) > (limit or OA_VALUE_MAX):
            raise ValueError(f"{key}.value: at most {limit or OA_VALUE_MAX} characters, got {len(entry.value)}")
    return data


def _page(v: str | None) -> str | None:
    if v is not None and (v.startswith("/") or " " in v):
        raise ValueError("a mini-program page path such as pages/index/index?x=1 (no leading slash, no spaces)")
    return v


class OAMiniProgram(_Strict):
    appid: str = Field(min_length=1, max_length=64)
    pagepath: str | None = Field(default=None, max_length=PAGE_MAX)

    _pagepath = field_validator("pagepath")(classmethod(lambda cls, v: _page(v)))


class OATemplate(_Strict):
    type: Literal["oa_template"]
    template_id: str = Field(min_length=1, max_length=TEMPLATE_ID_MAX)
    data: dict[str, DataValue]
    url: str | None = Field(default=None, max_length=1024, pattern=r"^https?://\S+$")
    miniprogram: OAMiniProgram | None = None

    @field_validator("data")
    @classmethod
    def _limits(cls, v: dict[str, DataValue]) -> dict[str, DataValue]:
        return _data_limits(v, kinds_required=False)


class MPSubscribe(_Strict):
    type: Literal["mp_subscribe"]
    template_id: str = Field(min_length=1, max_length=TEMPLATE_ID_MAX)
    page: str = Field(min_length=1, max_length=PAGE_MAX)
    data: dict[str, DataValue]

    _page = field_validator("page")(classmethod(lambda cls, v: _page(v)))

    @field_validator("data")
    @classmethod
    def _limits(cls, v: dict[str, DataValue]) -> dict[str, DataValue]:
        return _data_limits(v, kinds_required=True)


class _ViaMassMessage(_Strict):
    """An invite as a mass message with a mini-program card: WeCom requires its cover (`pic_media_id`); `title`
    defaults to the offer's or service's name."""

    via: Literal["wecom_mass_message"]
    text: str = Field(default="", max_length=TEXT_MAX_BYTES)
    title: str | None = Field(default=None, min_length=1, max_length=64)
    pic_media_id: str = Field(min_length=1, max_length=256)

    @field_validator("title")
    @classmethod
    def _title_bytes(cls, v: str | None) -> str | None:
        if v is not None and len(v.encode()) > 64:
            raise ValueError(f"at most 64 bytes (WeCom's limit for a mini-program card), got {len(v.encode())}")
        return v


class _ViaSubscribe(_Strict):
    """An invite as a subscribe message: the template the members granted, and its keywords."""

    via: Literal["mp_subscribe"]
    template_id: str = Field(min_length=1, max_length=TEMPLATE_ID_MAX)
    data: dict[str, DataValue]

    @field_validator("data")
    @classmethod
    def _limits(cls, v: dict[str, DataValue]) -> dict[str, DataValue]:
        return _data_limits(v, kinds_required=True)


class _ViaStaffTask(_Strict):
    """An invite as a staff task (CONTRACT §5 `wecom_staff_task` fields, within a template_card's limits)."""

    via: Literal["wecom_staff_task"]
    title: str = Field(min_length=1, max_length=TASK_TITLE_MAX)
    description: str = Field(default="", max_length=TASK_DESCRIPTION_MAX)
    due_in_hours: int = Field(ge=1, le=TASK_DUE_MAX_HOURS)


class _Groupbuy(_Strict):
    type: Literal["groupbuy_invite"]
    offer_id: DbId


class _Booking(_Strict):
    type: Literal["booking_invite"]
    service: str = Field(min_length=1, max_length=40)
    store: str | None = Field(default=None, min_length=1, max_length=40)


class GroupbuyByMassMessage(_Groupbuy, _ViaMassMessage): ...
class GroupbuyBySubscribe(_Groupbuy, _ViaSubscribe): ...
class GroupbuyByStaffTask(_Groupbuy, _ViaStaffTask): ...
class BookingByMassMessage(_Booking, _ViaMassMessage): ...
class BookingBySubscribe(_Booking, _ViaSubscribe): ...
class BookingByStaffTask(_Booking, _ViaStaffTask): ...


def _action_tag(value) -> str | None:
    """The action's kind: its type, and for an invite its `via` too (one flat union, so OpenAPI can show it)."""
    get = value.get if isinstance(value, dict) else lambda k: getattr(value, k, None)
    kind = get("type")
    return f"{kind}:{get('via')}" if kind in INVITES else kind


_ACTIONS = {"wecom_mass_message": MassMessage, "oa_template": OATemplate, "mp_subscribe": MPSubscribe,
            "groupbuy_invite:wecom_mass_message": GroupbuyByMassMessage,
            "groupbuy_invite:mp_subscribe": GroupbuyBySubscribe,
            "groupbuy_invite:wecom_staff_task": GroupbuyByStaffTask,
            "booking_invite:wecom_mass_message": BookingByMassMessage,
            "booking_invite:mp_subscribe": BookingBySubscribe,
            "booking_invite:wecom_staff_task": BookingByStaffTask,
            "wecom_staff_task": StaffTaskSpec}
Action = Annotated[Union[tuple(Annotated[model, Tag(tag)] for tag, model in _ACTIONS.items())],  # noqa: UP007
                   Discriminator(_action_tag)]


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
    """CONTRACT §5 (an action type not built answers 422 at action)."""

    name: str = Field(min_length=1, max_length=120)
    audience: Audience | None = None
    schedule: Schedule | None = None
    action: Action
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
