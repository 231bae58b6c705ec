"""Campaigns: create, read, and the state moves of CONTRACT §7, each a conditional UPDATE (an illegal move is 409).

draft → scheduled (`at`, `cron`) or running (by hand, `trigger`) on launch; running/scheduled ⇄ paused; any
live state → cancelled. Launching again is no move: it finds the run and its ledger written and sends nothing
twice. Resume continues from the ledger (pause is checked at claim time, so nothing rewinds).
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns import clock, fanout, invites
from campaigns.actions import ACTIONS
from campaigns.channels import INVITES
from campaigns.claims import release
from campaigns.ledger import _insert
from campaigns.models import (
    Campaign, CampaignRun, CampaignSend, CampaignStatus, CampaignStep, RunStatus, SendStatus, StepStatus,
)
from campaigns.schemas import CampaignIn
from config.errors import Conflict, InvalidInput, NotFound
from segments.models import Segment

S = CampaignStatus
LIVE = (S.draft.value, S.scheduled.value, S.running.value, S.paused.value)


def create_campaign(session: Session, *, spec: CampaignIn) -> Campaign:
    """Save a campaign as a draft."""
    segment_id = spec.audience.segment_id if spec.audience else None
    if segment_id is not None and session.get(Segment, segment_id) is None:
        raise InvalidInput(f"audience.segment_id: no segment {segment_id}")
    if spec.action.type in INVITES:
        invites.check(session, spec.action.model_dump(), ACTIONS)
    schedule = spec.schedule
    kind = "manual" if schedule is None else next(k for k in ("at", "cron", "trigger") if getattr(schedule, k))
    campaign = Campaign(name=spec.name, spec=spec.model_dump(mode="json", exclude_none=True), segment_id=segment_id,
                        schedule_kind=kind, action_type=spec.action.type,
                        trigger_event=schedule.trigger.event if kind == "trigger" else None,
                        status=S.draft.value, created_at=clock.now())
    session.add(campaign)
    session.flush()
    return campaign


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    """The campaign, or NotFound."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def _move(session: Session, campaign_id: int, from_: tuple[str, ...], **values) -> bool:
    got = session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status.in_(from_))
                          .values(updated_at=clock.now(), **values).returning(Campaign.id)).scalar()
    session.expire_all()
    return got is not None


def _refuse(session: Session, campaign_id: int, move: str) -> None:
    status = get_campaign(session, campaign_id).status
    raise Conflict(f"campaign {campaign_id} is {status}: it cannot {move}")


def launch(session: Session, *, campaign_id: int) -> Campaign:
    """Start a draft (a second launch finds the run and its ledger written, and sends nothing twice)."""
    campaign = get_campaign(session, campaign_id)
    now = clock.now()
    target = S.scheduled.value if campaign.schedule_kind in ("at", "cron") else S.running.value
    moved = _move(session, campaign_id, (S.draft.value,), status=target, launched_at=now)
    campaign = get_campaign(session, campaign_id)
    if not moved and campaign.status not in (S.running.value, S.scheduled.value, S.completed.value):
        _refuse(session, campaign_id, "be launched")
    if campaign.schedule_kind == "manual":
        run_id = session.execute(_insert(session, CampaignRun.__table__).values(
            campaign_id=campaign_id, key="manual", status=RunStatus.sending.value, due_at=now, created_at=now)
            .on_conflict_do_nothing(index_elements=["campaign_id", "key"]).returning(CampaignRun.id)).scalar()
        if run_id is None:
            run_id = session.scalar(select(CampaignRun.id).where(CampaignRun.campaign_id == campaign_id,
                                                                 CampaignRun.key == "manual"))
        fanout.enqueue_run(run_id, session=session)
    return campaign


def pause(session: Session, *, campaign_id: int) -> Campaign:
    """Stop claiming: chunks not yet claimed wait; a call under way finishes."""
    campaign = get_campaign(session, campaign_id)
    if not _move(session, campaign_id, (S.running.value, S.scheduled.value), status=S.paused.value,
                 resume_to=campaign.status):
        _refuse(session, campaign_id, "be paused")
    return get_campaign(session, campaign_id)


def resume(session: Session, *, campaign_id: int) -> Campaign:
    """Claim again from where the ledger stands."""
    campaign = get_campaign(session, campaign_id)
    if not _move(session, campaign_id, (S.paused.value,), status=campaign.resume_to or S.running.value,
                 resume_to=None):
        _refuse(session, campaign_id, "be resumed")
    for run_id in session.scalars(select(CampaignRun.id).where(CampaignRun.campaign_id == campaign_id,
                                                               CampaignRun.status == RunStatus.sending.value)):
        fanout.enqueue_run(run_id, session=session)
    return get_campaign(session, campaign_id)


def cancel(session: Session, *, campaign_id: int) -> Campaign:
    """Stop for good: what is not yet claimed is skipped as `cancelled`; a call under way finishes."""
    if not _move(session, campaign_id, LIVE, status=S.cancelled.value):
        _refuse(session, campaign_id, "be cancelled")
    now = clock.now()
    runs = select(CampaignRun.id).where(CampaignRun.campaign_id == campaign_id)
    # First the runs still being planned: this waits for a planner's batch under way (the run's row is its
    # lock), so the steps below include that batch and the planner stops before the next.
    session.execute(update(CampaignRun).where(CampaignRun.campaign_id == campaign_id,
                                              CampaignRun.planned_at.is_(None),
                                              CampaignRun.status == RunStatus.sending.value)
                    .values(status=RunStatus.cancelled.value, finished_at=now))
    planned = (CampaignStep.campaign_id == campaign_id) & (CampaignStep.status == StepStatus.planned.value)
    release(session, planned)
    session.execute(update(CampaignStep).where(planned).values(status=StepStatus.skipped.value, reason="cancelled",
                                                               updated_at=now))
    session.execute(update(CampaignSend).where(CampaignSend.run_id.in_(runs),
                                               CampaignSend.status == SendStatus.planned.value)
                    .values(status=SendStatus.cancelled.value, done_at=now))
    return get_campaign(session, campaign_id)


def users_of_segment(session: Session, segment_id: int) -> list[str]:
    """Usage hook for segments (bound in siyu.wiring): the live campaigns whose audience is the segment."""
    return [f"campaign {c.id} «{c.name}»" for c in session.scalars(
        select(Campaign).where(Campaign.segment_id == segment_id, Campaign.status.in_(LIVE)).order_by(Campaign.id))]
