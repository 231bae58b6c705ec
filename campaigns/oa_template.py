"""The `oa_template` action: an official-account template message (cgi-bin/message/template/send) to each
audience member who follows the account, one call per member (campaigns/member_sends.py).

The call carries the ledger key as `client_msg_id` (Tencent drops a repeat within ten minutes), but an
interrupted call is still never retried: past ten minutes Tencent promises nothing, and template/send has
no query API, so it is counted unknown. Tencent reports each message's fate later in a TEMPLATESENDJOBFINISH
event on /webhooks/official-account: `on_template_result` (bound in siyu/wiring.py) writes it to the ledger
and, when delivered, `campaign.sent` to the member's timeline. An event for a message no campaign row holds
(sent by someone else, or arriving before the send's answer was recorded, which Tencent's push delay makes
unlikely) changes nothing; the member's row then stays `submitted` (sent, fate not reported).
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from bot.clients import oa_client
from campaigns import clock, member_sends
from campaigns.claims import Work
from campaigns.models import Result, StepStatus

log = logging.getLogger(__name__)

PREFIX = "oa"  # message ids of the official account, apart from the mini-program's in one unique column
FATES = {"success": None, "failed:user block": "user_block", "failed: system failed": "system_failed"}


def call(work: Work) -> str:
    """Send the claimed member's template message."""
    action = work.action

    def deliver(t: member_sends.Target) -> dict:
        return oa_client().send_template(t.address, action["template_id"], action["data"], url=action.get("url"),
                                         miniprogram=action.get("miniprogram"), client_msg_id=t.key[:64])

    return member_sends.send(work, deliver, prefix=PREFIX, delivered=False)


reconcile = member_sends.reconcile
poll = member_sends.poll


def on_template_result(session: Session, *, openid: str, msgid: str, status: str, at: datetime | None = None) -> bool:
    """Hook of the official-account intake (TEMPLATESENDJOBFINISH): the message's fate on its ledger row; False
    when no campaign sent it (or its fate is recorded already)."""
    found = member_sends.step_of_msgid(session, f"{PREFIX}:{msgid}", openid)
    if found is None:
        return False
    step, campaign_id = found
    now = clock.now()
    step.updated_at = now
    reason = FATES.get(status.strip(), "system_failed")
    if reason is not None:
        step.status, step.reason, step.result = StepStatus.failed.value, reason, reason
        log.info("campaign step %s: template message not delivered (%s)", step.id, status)
        return True
    step.status, step.result = StepStatus.confirmed.value, Result.delivered.value
    target = member_sends.Target(step.id, step.member_id, step.key, campaign_id, step.run_id, openid)
    member_sends.sent(session, target, msgid=f"{PREFIX}:{msgid}", staff=None, at=at or now)
    return True
