"""The timeline's event vocabulary (CONTRACT §6 and the extensions recorded in CHANGELOG.md): the one list of it.

Every writer and every reader (the segment language, the counters) takes the types from here, so a type is
known the same way in every process, whatever else it imported.
"""
from __future__ import annotations

EVENT_TYPES: frozenset[str] = frozenset(
    """
    contact.added contact.edited contact.removed_by_staff contact.lost contact.transferred
    group.joined group.left oa.subscribed oa.unsubscribed oa.scanned
    message.received mp.session member.phone_bound member.merged
    tag.added tag.removed segment.entered segment.left campaign.sent campaign.skipped
    task.assigned task.completed
    groupbuy.joined groupbuy.paid groupbuy.succeeded groupbuy.failed groupbuy.refunded
    booking.created booking.cancelled booking.checked_in booking.completed booking.no_show
    """.split()
) | {
    "contact.transfer_failed",  # a 继承 the customer refused or that hit the takeover limit (CHANGELOG)
}

# Events Siyu or staff cause; they do not mean the customer was "seen".
NOT_SEEN: frozenset[str] = frozenset({
    "member.merged", "tag.added", "tag.removed", "segment.entered", "segment.left",
    "campaign.sent", "campaign.skipped", "task.assigned", "task.completed",
    "contact.removed_by_staff", "contact.transferred", "groupbuy.failed", "groupbuy.refunded",
})
SPEND_SIGN = {"groupbuy.paid": 1, "groupbuy.refunded": -1}  # events that move total_spent_fen, and which way
