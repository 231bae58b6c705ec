"""The campaign actions of CONTRACT §5, by `action.type`: each module answers `call(work)`, `reconcile(work)`
(an interrupted call, checked before anything is retried) and `poll(send_id)` (results of a submitted send)."""
from __future__ import annotations

from types import ModuleType

from campaigns import mass_message
from campaigns.tasks import action as staff_task

ACTIONS: dict[str, ModuleType] = {
    "wecom_mass_message": mass_message,
    "wecom_staff_task": staff_task,
}


def action_of(action: dict | None) -> ModuleType:
    """The module that carries out `action` (a campaign's stored spec)."""
    return ACTIONS[(action or {}).get("type", "wecom_mass_message")]
