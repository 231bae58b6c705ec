"""How an action's ledger rows are addressed: the identity each member is sent to, whether an owning staff
member is needed, how many members one call (send row) carries, and what the call uses up.

The ledger and the claims read it from the action spec, so they never import the action modules. An invite
(`groupbuy_invite`, `booking_invite`) is addressed as its `via` channel. An action not listed here is
addressed like a WeCom mass message (external contact, owning staff member, chunks, monthly quota).
"""
from __future__ import annotations

from dataclasses import dataclass

from bot.credentials import mp_credentials, oa_credentials
from config.settings import get_settings

INVITES = ("groupbuy_invite", "booking_invite")


@dataclass(frozen=True)
class Addressing:
    """`identity` (type, and `scope` when not None) is what a step is sent to; `missing` is the skip reason
    without one; `per_member`: one send row per member (a call per member, as OA and MP messages are)."""

    identity: str
    scope: str | None
    missing: str
    staff_required: bool
    per_member: bool
    mass_quota: bool  # takes WeCom's monthly per-customer mass-message quota
    grant_template: str | None = None  # a one-time subscribe grant of this template is needed (and consumed)
    # (follow, unfollow) timeline events: a member whose last of them is the unfollow is skipped as `unfollowed`
    follow_events: tuple[str, str] | None = None


WECOM = Addressing("wecom_external", None, "no_wecom_contact", staff_required=True, per_member=False, mass_quota=True)
# A staff task card goes to the staff member, not the customer: WeCom's mass-message quota is not taken.
STAFF_TASK = Addressing("wecom_external", None, "no_wecom_contact", staff_required=True, per_member=False,
                        mass_quota=False)
NO_OA_FOLLOWER = "no_oa_follower"
NO_MP_OPENID = "no_mp_openid"
NO_SUBSCRIBE_GRANT = "no_subscribe_grant"
OA_UNFOLLOWED = "oa_unfollowed"  # the openid is kept after an unfollow (a follow again binds the same member)


def channel_of(action: dict | None) -> str:
    """The channel an action goes out on: its type, or an invite's `via`."""
    action = action or {}
    kind = action.get("type", "wecom_mass_message")
    return action.get("via", "wecom_mass_message") if kind in INVITES else kind


def addressing_of(action: dict | None) -> Addressing:
    """How the ledger addresses the members of a campaign with this action."""
    channel = channel_of(action)
    if channel == "oa_template":
        return Addressing("oa_openid", oa_credentials(get_settings()).app_id, NO_OA_FOLLOWER,
                          staff_required=False, per_member=True, mass_quota=False,
                          follow_events=("oa.subscribed", "oa.unsubscribed"))
    if channel == "mp_subscribe":
        return Addressing("mp_openid", mp_credentials(get_settings()).app_id, NO_MP_OPENID, staff_required=False,
                          per_member=True, mass_quota=False, grant_template=(action or {}).get("template_id"))
    if channel == "wecom_staff_task":
        return STAFF_TASK
    return WECOM
