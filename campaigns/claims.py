"""Claiming a chunk (one send row) for a WeCom call: the lease, the pause flag, the contact policy and the quota.

A worker takes the next due send of a running campaign with `FOR UPDATE SKIP LOCKED` (SQLite: its one writer
at a time), so two workers never hold one chunk. A send whose earlier claim expired, or whose call ended
unknown, may be out already: it comes back as `reconcile`, never as a new call. The monthly quota was
reserved when the send was planned (campaigns.ledger); each member's quota row of the month is locked (in
member order) while the policy reads their recent contacts, so two campaigns claiming one member are
serialised. A member the policy skips gives the reservation back; one without a reservation of this month
(a refused call released it, or quiet hours moved the send into the next month) takes one, a conditional
UPDATE under a CHECK.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from campaigns import policy as contact
from campaigns.channels import addressing_of
from campaigns.ledger import _insert
from campaigns.models import (
    Campaign, CampaignRun, CampaignSend, CampaignStatus, CampaignStep, MassQuota, SendStatus, StepStatus,
)
from config.settings import get_settings
from membership import timeline
from membership.models import Staff

log = logging.getLogger(__name__)

COUNTED = (StepStatus.claimed.value, StepStatus.submitted.value, StepStatus.confirmed.value, StepStatus.unknown.value)
RETRY_AFTER = timedelta(seconds=60)  # a call WeCom refused for a passing reason (rate, busy) is tried again


@dataclass(frozen=True)
class Work:
    """What the claimer must do next with send `send_id` (`call`, `reconcile`, `wait` until `until`, `none`)."""

    kind: str
    send_id: int | None = None
    attempt: int = 0
    userid: str | None = None
    recipients: tuple[str, ...] = ()
    action: dict | None = None
    claimed_at: datetime | None = None
    until: datetime | None = None


def _due(run_id: int, now: datetime):
    s = CampaignSend
    return (select(s).join(CampaignRun, CampaignRun.id == s.run_id)
            .join(Campaign, Campaign.id == CampaignRun.campaign_id)
            .where(s.run_id == run_id, Campaign.status == CampaignStatus.running.value,
                   CampaignRun.planned_at.is_not(None),  # a run still being planned adds to its chunks
                   or_(and_(s.status == SendStatus.planned.value, s.due_at <= now),
                       and_(s.status == SendStatus.claimed.value, s.lease_until < now),
                       and_(s.status == SendStatus.unknown.value, s.due_at <= now)))
            .order_by(s.id).limit(1).with_for_update(skip_locked=True, of=s))


def claim_next(session: Session, *, run_id: int, now: datetime) -> Work | None:
    """Claim the run's next due chunk (None: nothing due, or the campaign is not running)."""
    settings = get_settings()
    send = session.scalars(_due(run_id, now)).first()
    if send is None:
        return None
    campaign = session.scalar(select(Campaign).join(CampaignRun, CampaignRun.campaign_id == Campaign.id)
                              .where(CampaignRun.id == run_id))
    userid = session.scalar(select(Staff.userid).where(Staff.id == send.staff_id))
    lease = now + timedelta(seconds=settings.campaign_lease_seconds)
    if send.recipients is not None:  # a call may have gone out: find it before anything is sent again
        if send.status == SendStatus.claimed.value:
            log.warning("campaign send %s: claim expired mid-call, reconciling", send.id)
        send.status, send.attempt, send.lease_until = SendStatus.claimed.value, send.attempt + 1, lease
        _mark_steps(session, send.id, StepStatus.claimed, StepStatus.unknown)
        return Work("reconcile", send.id, send.attempt, userid, tuple(send.recipients), campaign.spec["action"],
                    send.claimed_at)
    pol = contact.policy_for(campaign.spec.get("policy"), settings)
    until = contact.quiet_until(pol, now)
    always = until is not None and any(q.contains(until, pol.tz) for q in pol.quiet)  # evaluate() skips them
    if until is not None and not always:  # the same for every member of the chunk: it waits, nothing is dropped
        send.due_at = until
        return Work("wait", send.id, until=until)
    recipients = _apply_policy(session, send.id, campaign, pol, now)
    if not recipients:
        send.status, send.done_at = SendStatus.done.value, now
        return Work("none", send.id)
    send.status, send.attempt, send.lease_until = SendStatus.claimed.value, send.attempt + 1, lease
    send.recipients, send.claimed_at = recipients, now
    return Work("call", send.id, send.attempt, userid, tuple(recipients), campaign.spec["action"], now)


def _mark_steps(session: Session, send_id: int, to: StepStatus, *from_: StepStatus) -> None:
    session.execute(update(CampaignStep).where(CampaignStep.send_id == send_id,
                                               CampaignStep.status.in_([f.value for f in from_]))
                    .values(status=to.value))


def _apply_policy(session: Session, send_id: int, campaign: Campaign, pol: contact.Policy, now: datetime) -> list[str]:
    st, q = CampaignStep, MassQuota
    mine = and_(st.send_id == send_id, st.status == StepStatus.planned.value)  # this claim holds the send's row
    month = contact.month_of(now, pol.tz)
    mass = addressing_of(campaign.spec.get("action")).mass_quota
    if not mass:  # an OA, MP or staff-task message takes nothing of WeCom's mass-message quota
        pol = replace(pol, monthly_quota=max(pol.monthly_quota, 1))
    if pol.cap.max > 0:
        # The quota rows of this month are what two campaigns claiming one member lock: made to exist (used 0)
        # for members planning reserved no row of this month for (another action, a send that waited into
        # another month), or the claims would read each other's contacts unserialised.
        ids = list(session.scalars(select(st.member_id).where(mine)))
        reserve(session, ids, month, pol.monthly_quota, take=False)
    quota = select(q.member_id, q.used).join(st, st.member_id == q.member_id).where(mine, q.month == month)
    if pol.cap.max > 0:  # lock in member order: two campaigns claiming one member are serialised for the cap
        quota = quota.order_by(q.member_id).with_for_update(of=q)
    locked = dict(session.execute(quota).all()) if (mass or pol.cap.max > 0) else {}
    used = locked if mass else {}
    contacts: dict[int, list[datetime]] = {}
    if pol.cap.max > 0:
        other = CampaignStep.__table__.alias("contact")
        since = now - timedelta(days=pol.cap.per_days)
        for member_id, at in session.execute(
                select(other.c.member_id, other.c.contacted_at).join(st, st.member_id == other.c.member_id)
                .where(mine, other.c.status.in_(COUNTED), other.c.contacted_at > since)):
            contacts.setdefault(member_id, []).append(at)
    steps = session.execute(select(st.id, st.member_id, st.key, st.quota_month).where(mine)).all()
    skipped, decided, moving = {}, {}, []
    for s in steps:
        # The planning's reservation of this month is the member's own: the evaluator sees the others.
        facts = (tuple(contacts.get(s.member_id, ())), used.get(s.member_id, 0) - (s.quota_month == month))
        if facts not in decided:  # most members share their facts: one evaluation each
            decided[facts] = contact.evaluate(pol, now=now, contacts=list(facts[0]), quota_used=facts[1])
        decision = decided[facts]
        if decision.action != "send":
            skipped[s.id] = (s, decision.reason)
        elif mass and s.quota_month != month:
            moving.append(s)
    # A step without this month's reservation (a refused call gave it back, or the send waited into another
    # month) takes one now; the CHECK-guarded reservation has the last word.
    if moving:
        release(session, st.id.in_([s.id for s in moving]))
        reserved = reserve(session, [s.member_id for s in moving], month, pol.monthly_quota)
        for s in moving:
            if s.member_id not in reserved:
                skipped[s.id] = (s, contact.MONTHLY_QUOTA)
    by_reason: dict[str, list[int]] = {}
    for s, reason in skipped.values():
        by_reason.setdefault(reason, []).append(s.id)
        timeline.record_event(session, s.member_id, "campaign.skipped",
                              {"campaign_id": campaign.id, "reason": reason}, at=now, dedupe_key=f"{s.key}:skipped")
    for reason, step_ids in by_reason.items():  # a skipped send gives its reservation back
        for part in _parts(step_ids):
            release(session, st.id.in_(part))
            session.execute(update(st).where(st.id.in_(part)).values(status=StepStatus.skipped.value, reason=reason,
                                                                     updated_at=now))
    # The rest go: exactly the rows this statement moves are the call's recipients.
    return sorted(session.scalars(update(st).where(mine).values(
        status=StepStatus.claimed.value, contacted_at=now, quota_month=month if mass else None, updated_at=now)
        .returning(st.external_userid)))


PART = 5_000  # ids per IN list (PostgreSQL's protocol takes 65,535 parameters, SQLite 32,766)


def _parts(ids: list) -> list[list]:
    return [ids[i:i + PART] for i in range(0, len(ids), PART)]


def lock_quota(session: Session, member_ids: list[int], month: str) -> dict[int, int]:
    """Lock the members' quota rows of `month` (those that exist), in member order; their `used` counts.

    Two campaigns claiming one member are serialised here while the policy reads their recent contacts."""
    q = MassQuota
    out: dict[int, int] = {}
    for part in _parts(sorted(member_ids)):
        out.update(session.execute(select(q.member_id, q.used).where(q.member_id.in_(part), q.month == month)
                                   .order_by(q.member_id).with_for_update()).all())
    return out


def reserve(session: Session, member_ids: list[int], month: str, quota: int, take: bool = True) -> set[int]:
    """Take one mass message of each member's quota of `month` (creating the rows); those whose reservation
    held. A changed setting applies from now on, never below what is already reserved (the CHECK). With
    `take=False` the rows are only made to exist (they are what claims lock)."""
    q, got = MassQuota, set()
    for part in _parts(sorted(member_ids)):
        session.execute(_insert(session, MassQuota.__table__)
                        .values([{"member_id": m, "month": month, "quota": quota, "used": 0} for m in part])
                        .on_conflict_do_nothing(index_elements=["member_id", "month"]))
        if not take:
            continue
        got |= set(session.scalars(update(q).where(q.member_id.in_(part), q.month == month, q.used < quota)
                                   .values(used=q.used + 1, quota=quota).returning(q.member_id)))
    return got


def release(session: Session, condition) -> int:
    """Give back the quota reservations of the steps matching `condition` (each once); how many."""
    st, q = CampaignStep, MassQuota
    freed = 0
    for month in session.scalars(select(st.quota_month).where(condition, st.quota_month.is_not(None)).distinct()):
        members = Counter(session.scalars(update(st).where(condition, st.quota_month == month)
                                          .values(quota_month=None).returning(st.member_id)))
        freed += sum(members.values())
        by_count: dict[int, list[int]] = {}
        for member_id, n in members.items():  # one member may hold several (two runs of a campaign)
            by_count.setdefault(n, []).append(member_id)
        for n, ids in by_count.items():
            for part in _parts(sorted(ids)):
                session.execute(update(q).where(q.member_id.in_(part), q.month == month, q.used >= n)
                                .values(used=q.used - n))
    return freed


def exhaust(session: Session, member_ids: list[int], month: str) -> None:
    """WeCom says these members had their month's quota: no more reservations for them this month."""
    if member_ids:
        q = MassQuota
        session.execute(update(q).where(q.member_id.in_(member_ids), q.month == month).values(used=q.quota))
