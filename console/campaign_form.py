"""The campaign form: its fields turned into the CONTRACT §5 spec the API takes, and the API's 422 put by the field.

The spec is validated by `campaigns.schemas.CampaignIn`, the API's own body, so the form accepts and refuses
exactly what POST /api/v1/campaigns does. Each action type the form offers has a builder here; a new action is
one entry in ACTION_FORMS (and its template `campaign_action_<type>.html`).
"""
from __future__ import annotations

from pydantic import ValidationError
from starlette.datastructures import ImmutableMultiDict

from campaigns.schemas import CampaignIn
from config.errors import InvalidInput
from console.web import local_input


def _mass_message(form: ImmutableMultiDict) -> dict:
    return {"type": "wecom_mass_message", "text": form.get("text", "")}


ACTION_FORMS = {"wecom_mass_message": ("企业微信群发 (wecom_mass_message)", _mass_message)}
SCHEDULE_KINDS = {"manual": "手动启动", "at": "定时 (at)", "cron": "周期 (cron)", "trigger": "事件触发 (trigger)"}
# Where the API's error locations are shown on the form (the longest matching prefix wins).
FIELD_OF_LOC = {
    ("name",): "name", ("audience",): "segment_id", ("schedule",): "schedule_kind", ("schedule", "at"): "at",
    ("schedule", "cron"): "cron", ("schedule", "trigger"): "trigger_event",
    ("schedule", "trigger", "delay_minutes"): "delay_minutes", ("action",): "text", ("action", "type"): "action_type",
    ("policy", "quiet_hours"): "quiet_start", ("policy", "quiet_hours", "end"): "quiet_end",
    ("policy", "frequency_cap"): "cap_max", ("policy", "frequency_cap", "per_days"): "cap_per_days",
    ("goal",): "goal_event", ("goal", "within_days"): "goal_days",
}


class FormError(InvalidInput):
    """A field the form could not even turn into the spec (a number that is not one)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _int(form: ImmutableMultiDict, field: str, name: str) -> int | None:
    raw = form.get(field, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise FormError(field, f"{name}: a whole number, got {raw[:20]!r}") from None


def spec_of(form: ImmutableMultiDict) -> dict:
    """The campaign spec the form describes (not yet validated)."""
    spec: dict = {"name": form.get("name", "").strip()}
    segment = _int(form, "segment_id", "audience.segment_id")
    if segment is not None:
        spec["audience"] = {"segment_id": segment}
    kind = form.get("schedule_kind", "manual")
    if kind == "at":
        spec["schedule"] = {"at": local_input(form.get("at", ""))}
    elif kind == "cron":
        spec["schedule"] = {"cron": form.get("cron", "").strip()}
    elif kind == "trigger":
        trigger: dict = {"event": form.get("trigger_event", "")}
        delay = _int(form, "delay_minutes", "schedule.trigger.delay_minutes")
        if delay is not None:
            trigger["delay_minutes"] = delay
        spec["schedule"] = {"trigger": trigger}
    elif kind != "manual":
        raise FormError("schedule_kind", f"schedule: one of {', '.join(SCHEDULE_KINDS)}")
    action = form.get("action_type", "wecom_mass_message")
    if action not in ACTION_FORMS:
        raise FormError("action_type", f"action.type: the form offers {', '.join(ACTION_FORMS)}")
    spec["action"] = ACTION_FORMS[action][1](form)
    policy: dict = {}
    if form.get("quiet_start", "").strip() or form.get("quiet_end", "").strip():
        policy["quiet_hours"] = {"start": form.get("quiet_start", "").strip(), "end": form.get("quiet_end", "").strip()}
    cap_max, per_days = _int(form, "cap_max", "policy.frequency_cap.max"), \
        _int(form, "cap_per_days", "policy.frequency_cap.per_days")
    if cap_max is not None or per_days is not None:
        policy["frequency_cap"] = {"max": cap_max if cap_max is not None else 0, "per_days": per_days or 7}
    if policy:
        spec["policy"] = policy
    if form.get("goal_event", ""):
        spec["goal"] = {"event": form.get("goal_event")}
        days = _int(form, "goal_days", "goal.within_days")
        if days is not None:
            spec["goal"]["within_days"] = days
    return spec


def _field(loc: tuple) -> str:
    best, length = "_form", 0
    for prefix, field in FIELD_OF_LOC.items():
        if loc[:len(prefix)] == prefix and len(prefix) > length:
            best, length = field, len(prefix)
    return best


def validate(form: ImmutableMultiDict) -> tuple[CampaignIn | None, dict[str, str]]:
    """The API's body for the form, or the API's messages by form field."""
    try:
        return CampaignIn.model_validate(spec_of(form)), {}
    except FormError as exc:
        return None, {exc.field: exc.detail}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for e in exc.errors():
            loc = tuple(str(p) for p in e.get("loc", ()))
            msg = e["msg"].removeprefix("Value error, ")
            field = _field(loc)
            if not loc and msg.startswith("audience"):
                field = "segment_id"
            errors.setdefault(field, f"{'.'.join(loc) + ': ' if loc else ''}{msg}")
        return None, errors
