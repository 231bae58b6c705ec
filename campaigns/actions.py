"""The campaign actions of CONTRACT §5, by `action.type`: each module answers `call(work)`, `reconcile(work)`
(an interrupted call, checked before anything is retried) and `poll(send_id)` (results of a submitted send)."""
from __future__ import annotations

from types import ModuleType

from campaigns import invites, mass_message, mp_subscribe, oa_template
from campaigns.tasks import action as staff_task

ACTIONS: dict[str, ModuleType] = {
    "wecom_mass_message": mass_message,
    "wecom_staff_task": staff_task,
    "oa_template": oa_template,
    "mp_subscribe": mp_subscribe,
}
# An invite goes out through the action of its `via`, looked up in ACTIONS when it is carried out.
ACTIONS["groupbuy_invite"] = ACTIONS["booking_invite"] = invites.Invite(ACTIONS)


def action_of(action: dict | None) -> ModuleType:
    """The module that carries out `action` (a campaign's stored spec)."""
    return ACTIONS[(action or {}).get("type", "wecom_mass_message")]
