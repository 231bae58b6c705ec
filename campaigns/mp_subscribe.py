"""The `mp_subscribe` action: a mini-program subscribe message (cgi-bin/message/subscribe/send) to each audience
member who granted that template, one call per member (campaigns/member_sends.py).

Each grant is one-time (membership/consents.py, the same grants booking reminders use): the ledger skips a
member with none left as `no_subscribe_grant`, and the send consumes one with a conditional UPDATE right before
the call, so two campaigns never spend one grant twice (the second skips the member). A refusal gives the grant
back, except 43101 (the user had none); an unknown outcome keeps it used (the message may have spent it).
"""
from __future__ import annotations

from bot.clients import mp_client
from campaigns import member_sends
from campaigns.claims import Work

PREFIX = "mp"


def call(work: Work) -> str:
    """Send the claimed member's subscribe message, taking one of their grants of the template."""
    action = work.action

    def deliver(t: member_sends.Target) -> dict:
        return mp_client().send_subscribe(t.address, action["template_id"], action["data"], page=action.get("page"))

    return member_sends.send(work, deliver, prefix=PREFIX, delivered=True, grant=action["template_id"])


reconcile = member_sends.reconcile
poll = member_sends.poll
