"""Actions Tencent takes one member per call (OA template and MP subscribe messages): one send row per member,
so the ledger's claim, lease and fencing carry each call exactly as they carry a mass-message chunk.

Neither API can be asked afterwards whether a call went out (template/send and subscribe/send have no query
API). So a call whose outcome is not known — no usable answer, or a worker killed mid-call whose lease then
expired — is settled `unknown` (reason `outcome_unknown`) and never retried: it is counted as unknown in the
stats, and a lost message is better than a doubled one. Tencent's refusals (nothing went out) are failed
with a reason, or planned again after a minute when they pass (rate limit, busy, token).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update

from bot.errors import BusyError, RateLimitedError, TokenError, TransportError, WeChatAPIError
from campaigns import clock, outcomes
from campaigns.channels import NO_SUBSCRIBE_GRANT
from campaigns.claims import Work
from campaigns.models import CampaignRun, CampaignSend, CampaignStep, Result, SendStatus, StepStatus
from config.database import session_scope
from membership import consents, timeline

log = logging.getLogger(__name__)

PASSING = (RateLimitedError, BusyError, TokenError)
OUTCOME_UNKNOWN = "outcome_unknown"
REASONS = {  # Tencent's documented refusals of template/send and subscribe/send, as the ledger counts them
    40003: "invalid_openid", 40037: "invalid_template", 41030: "invalid_page", 43004: "not_subscribed",
    43101: "user_refused", 47003: "invalid_data",
}
NO_GRANT_USED = 43101  # the user had no grant: none was used, so none is given back
# The template, the page or the data is wrong, and the same for every member: the run's other sends would be
# refused alike, so they fail with the first instead of calling Tencent once per member to hear it again.
CAMPAIGN_WIDE = (40037, 41030, 47003)


@dataclass(frozen=True)
class Target:
    """The one member a claimed per-member send goes to."""

    step_id: int
    member_id: int
    key: str
    campaign_id: int
    run_id: int
    address: str  # the openid


def target(send_id: int) -> Target | None:
    """The member of a per-member send whose step is claimed (None: nothing left to send)."""
    st = CampaignStep
    with session_scope() as s:
        row = s.execute(select(st.id, st.member_id, st.key, st.campaign_id, st.run_id, st.external_userid)
                        .where(st.send_id == send_id, st.status == StepStatus.claimed.value).limit(1)).first()
    return Target(*row) if row else None


def _settle(s, work: Work, *, send: dict, step: dict) -> bool:
    now = clock.now()
    if outcomes.take(s, work.send_id, work.attempt, lease_until=None, done_at=now, **send) is None:
        log.warning("campaign send %s: attempt %s lost its claim; nothing recorded", work.send_id, work.attempt)
        return False
    s.execute(update(CampaignStep).where(CampaignStep.send_id == work.send_id,
                                         CampaignStep.status.in_([StepStatus.claimed.value, StepStatus.unknown.value]))
              .values(updated_at=now, **step))
    return True


def unknown(work: Work, error: str) -> str:
    """Settle the send as unknown for good (see the module's docstring): no retry, counted as unknown."""
    with session_scope() as s:
        _settle(s, work, send={"status": SendStatus.done.value, "error": error},
                step={"status": StepStatus.unknown.value, "reason": OUTCOME_UNKNOWN})
    log.warning("campaign send %s: outcome unknown, not retried (no query API): %s", work.send_id, error)
    return "unknown"


def take_grant(work: Work, t: Target, template_id: str) -> bool:
    """Consume one of the member's grants of `template_id`; with none left the send is skipped (and said so)."""
    with session_scope() as s:
        if consents.consume(s, member_id=t.member_id, template_id=template_id):
            return True
        if _settle(s, work, send={"status": SendStatus.done.value},
                   step={"status": StepStatus.skipped.value, "reason": NO_SUBSCRIBE_GRANT, "contacted_at": None}):
            timeline.record_event(s, t.member_id, "campaign.skipped",
                                  {"campaign_id": t.campaign_id, "reason": NO_SUBSCRIBE_GRANT}, at=clock.now(),
                                  dedupe_key=f"{t.key}:skipped")
    return False


def send(work: Work, deliver: Callable[[Target], dict], *, prefix: str, delivered: bool,
         grant: str | None = None) -> str:
    """Make one claimed member's call and record it: 'submitted', 'delivered', 'skipped', 'refused', 'unknown'.

    `delivered`: Tencent's success means the member has it (subscribe/send); otherwise the outcome comes later
    (the official account's TEMPLATESENDJOBFINISH event). `grant`: a subscribe grant of that template is used.
    """
    t = target(work.send_id)
    if t is None:
        return "nothing to send"
    if grant is not None and not take_grant(work, t, grant):
        return "skipped"
    try:
        answer = deliver(t)
    except TransportError as exc:
        return unknown(work, str(exc))  # a grant taken stays taken: the message may have used it
    except WeChatAPIError as exc:
        if grant is not None and exc.errcode != NO_GRANT_USED:  # refused without delivering: the grant is theirs
            with session_scope() as s:
                consents.release(s, member_id=t.member_id, template_id=grant)
        reason = REASONS.get(exc.errcode, f"refused_{exc.errcode}")
        with session_scope() as s:
            outcomes.refused(s, send_id=work.send_id, attempt=work.attempt, error=str(exc),
                             retry=isinstance(exc, PASSING), now=clock.now(), reason=reason)
            if exc.errcode in CAMPAIGN_WIDE:
                fail_rest(s, run_id=t.run_id, reason=reason, error=str(exc))
        log.warning("campaign send %s: refused: %s", work.send_id, exc)
        return "refused"
    except Exception as exc:  # not Tencent's answer: whether anything went out is unknown
        unknown(work, f"{type(exc).__name__}: {exc}")
        raise
    now = clock.now()
    msgid = f"{prefix}:{answer.get('msgid')}" if answer.get("msgid") else None
    step = {"status": StepStatus.submitted.value, "submitted_at": now}
    if delivered:
        step |= {"status": StepStatus.confirmed.value, "result": Result.delivered.value}
    with session_scope() as s:
        if _settle(s, work, send={"status": SendStatus.done.value, "msgid": msgid, "submitted_at": now},
                   step=step) and delivered:
            sent(s, t, msgid=msgid, staff=work.userid, at=now)
    return "delivered" if delivered else "submitted"


def fail_rest(s, *, run_id: int, reason: str, error: str) -> int:
    """Fail the run's sends not yet claimed (and their members' rows) for a refusal that holds for all; how many."""
    now = clock.now()
    cs = CampaignSend
    ids = list(s.scalars(update(cs).where(cs.run_id == run_id, cs.status == SendStatus.planned.value)
                         .values(status=SendStatus.failed.value, error=error, done_at=now).returning(cs.id)))
    if ids:
        s.execute(update(CampaignStep).where(CampaignStep.send_id.in_(ids),
                                             CampaignStep.status == StepStatus.planned.value)
                  .values(status=StepStatus.failed.value, reason=reason, updated_at=now))
        log.warning("campaign run %s: %d sends failed with the first (%s)", run_id, len(ids), reason)
    return len(ids)


def sent(s, t: Target, *, msgid: str | None, staff: str | None, at) -> None:
    """`campaign.sent` on the member's timeline, once per ledger row."""
    timeline.record_event(s, t.member_id, "campaign.sent",
                          {"campaign_id": t.campaign_id, "run_id": t.run_id, "staff": staff, "msgid": msgid},
                          at=at, dedupe_key=t.key)


def reconcile(work: Work) -> str:
    """A claim that expired mid-call, or an unknown outcome: settled unknown, never sent again."""
    return unknown(work, "the call was interrupted; its outcome cannot be queried")


def poll(send_id: int) -> str:
    """Nothing to poll: per-member sends are settled when the call answers (results come by event, if at all)."""
    return "done"


def step_of_msgid(s, msgid: str, address: str) -> tuple[CampaignStep, int] | None:
    """The submitted ledger row a message id (as stored, with its prefix) was sent for, and its campaign."""
    st = CampaignStep
    row = s.execute(select(st, CampaignRun.campaign_id).join(CampaignSend, CampaignSend.id == st.send_id)
                    .join(CampaignRun, CampaignRun.id == st.run_id)
                    .where(CampaignSend.msgid == msgid, st.external_userid == address,
                           st.status == StepStatus.submitted.value).with_for_update(of=st)).first()
    return (row[0], row[1]) if row else None
