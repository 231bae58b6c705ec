"""What became of a claimed chunk, recorded on its send row and ledger rows (each a conditional UPDATE on the
claim's attempt number, so a worker whose lease was taken over records nothing)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns import claims
from campaigns.models import CampaignRun, CampaignSend, CampaignStep, Result, SendStatus, StepStatus
from membership import timeline

log = logging.getLogger(__name__)

FIRST_POLL = timedelta(minutes=5)
FAIL_LIST = "wecom_fail_list"


def _take(session: Session, send_id: int, attempt: int, **values) -> CampaignSend | None:
    s = CampaignSend
    got = session.execute(update(s).where(s.id == send_id, s.attempt == attempt, s.status == SendStatus.claimed.value)
                          .values(**values).returning(s.id)).scalar()
    return session.get(CampaignSend, got, populate_existing=True) if got else None


def take(session: Session, send_id: int, attempt: int, **values) -> CampaignSend | None:
    """The send updated with `values` while `attempt` still holds its claim; None when the claim was lost."""
    return _take(session, send_id, attempt, **values)


def submitted(session: Session, *, send_id: int, attempt: int, msgid: str | None, fail_list: list[str],
              now: datetime) -> bool:
    """WeCom took the call: msgid and fail_list on the send; its customers submitted, those in fail_list failed."""
    status = SendStatus.submitted if msgid else SendStatus.done
    send = _take(session, send_id, attempt, status=status.value, msgid=msgid or None, fail_list=fail_list,
                 submitted_at=now, next_poll_at=now + FIRST_POLL, lease_until=None,
                 done_at=None if msgid else now)
    if send is None:
        log.warning("campaign send %s: attempt %s lost its claim; its result is left to reconciliation",
                    send_id, attempt)
        return False
    st = CampaignStep
    mine = (st.send_id == send_id) & st.status.in_([StepStatus.claimed.value, StepStatus.unknown.value])
    failed = set(fail_list)
    if failed:
        cond = mine & st.external_userid.in_(failed)
        claims.release(session, cond)
        session.execute(update(st).where(cond).values(status=StepStatus.failed.value, reason=FAIL_LIST, updated_at=now))
    session.execute(update(st).where(mine).values(status=StepStatus.submitted.value, submitted_at=now, updated_at=now))
    return True


def refused(session: Session, *, send_id: int, attempt: int, error: str, retry: bool, now: datetime,
            reason: str = "wecom_refused") -> None:
    """WeCom refused the call, so nothing went out: tried again later (`retry`) or failed for good."""
    st = CampaignStep
    mine = (st.send_id == send_id) & (st.status == StepStatus.claimed.value)
    if retry:
        if _take(session, send_id, attempt, status=SendStatus.planned.value, due_at=now + claims.RETRY_AFTER,
                 recipients=None, lease_until=None, error=error) is None:
            return
        claims.release(session, mine)
        session.execute(update(st).where(mine).values(status=StepStatus.planned.value, contacted_at=None,
                                                      updated_at=now))
        return
    if _take(session, send_id, attempt, status=SendStatus.failed.value, lease_until=None, error=error,
             done_at=now) is None:
        return
    claims.release(session, mine)
    session.execute(update(st).where(mine).values(status=StepStatus.failed.value, reason=reason, updated_at=now))


RECONCILE_AFTER = timedelta(minutes=1)  # WeCom may still be making the task a lost answer was about


def unknown(session: Session, *, send_id: int, attempt: int, error: str, now: datetime) -> None:
    """The call got no usable answer: it may be out; reconciled against get_groupmsg_list_v2 before any retry."""
    if _take(session, send_id, attempt, status=SendStatus.unknown.value, lease_until=None, error=error,
             due_at=now + RECONCILE_AFTER) is not None:
        claims._mark_steps(session, send_id, StepStatus.unknown, StepStatus.claimed)


def not_sent(session: Session, *, send_id: int, attempt: int, now: datetime) -> None:
    """Reconciliation found no such mass message: the chunk is planned again (the policy looks at it afresh)."""
    if _take(session, send_id, attempt, status=SendStatus.planned.value, recipients=None, lease_until=None,
             due_at=now) is None:
        return
    st = CampaignStep
    mine = (st.send_id == send_id) & st.status.in_([StepStatus.claimed.value, StepStatus.unknown.value])
    claims.release(session, mine)
    session.execute(update(st).where(mine).values(status=StepStatus.planned.value, contacted_at=None, updated_at=now))


# -- results ------------------------------------------------------------------------------------------------
WECOM_RESULT = {1: Result.delivered, 2: Result.not_friend, 3: Result.quota_reached}


def results(session: Session, *, send: CampaignSend, userid: str, rows: list[dict], confirmed_at: datetime,
            now: datetime) -> int:
    """The staff member sent it: each customer's outcome on their ledger row and timeline; how many delivered."""
    st = CampaignStep
    by_ext = {r.get("external_userid"): r for r in rows}
    steps = list(session.scalars(select(st).where(st.send_id == send.id, st.status == StepStatus.submitted.value)))
    campaign_id = session.scalar(select(CampaignRun.campaign_id).where(CampaignRun.id == send.run_id))
    delivered = 0
    for step in steps:
        row = by_ext.get(step.external_userid, {})
        result = WECOM_RESULT.get(int(row.get("status") or 0), Result.not_confirmed)
        step.confirmed_at, step.updated_at, step.result = confirmed_at, now, result.value
        if result is Result.delivered:
            step.status = StepStatus.confirmed.value
            delivered += 1
            at = datetime.fromtimestamp(int(row.get("send_time") or confirmed_at.timestamp()), confirmed_at.tzinfo)
            timeline.record_event(session, step.member_id, "campaign.sent",
                                  {"campaign_id": campaign_id, "run_id": send.run_id, "staff": userid,
                                   "msgid": send.msgid}, at=at, dedupe_key=step.key)
            continue
        step.status, step.reason = StepStatus.failed.value, result.value
        if result is Result.quota_reached and step.quota_month:  # WeCom counted more than we knew of
            claims.exhaust(session, [step.member_id], step.quota_month)
            step.quota_month = None
    session.flush()
    claims.release(session, (st.send_id == send.id) & (st.status == StepStatus.failed.value))
    send.status, send.confirmed_at, send.done_at, send.next_poll_at = SendStatus.done.value, confirmed_at, now, None
    return delivered


def not_confirmed(session: Session, *, send: CampaignSend, now: datetime) -> None:
    """The staff member never confirmed: its customers got nothing, and their reservations go back."""
    st = CampaignStep
    mine = (st.send_id == send.id) & (st.status == StepStatus.submitted.value)
    claims.release(session, mine)
    session.execute(update(st).where(mine).values(status=StepStatus.failed.value, reason=Result.not_confirmed.value,
                                                  result=Result.not_confirmed.value, updated_at=now))
    send.status, send.done_at, send.next_poll_at = SendStatus.done.value, now, None
