"""Scheduled campaigns: `at` and `cron` occurrences become runs, in SIYU_TIMEZONE, with a lateness bound.

Each tick records every occurrence since the last one it recorded (the campaign row is locked, and a run
is unique per campaign and occurrence): on time, it fires; more than SIYU_CAMPAIGN_MAX_LATENESS_MINUTES
late (the scheduler was down, a backup was restored), it is recorded `missed` and not fired.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import cron
from campaigns.ledger import _insert
from campaigns.models import Campaign, CampaignRun, CampaignStatus, RunStatus
from config.settings import get_settings

log = logging.getLogger(__name__)


def occurrences(campaign: Campaign, now: datetime) -> list[datetime]:
    """The campaign's occurrences after what it recorded, up to `now`."""
    since = campaign.fired_through or campaign.launched_at or campaign.created_at
    schedule = campaign.spec.get("schedule") or {}
    if campaign.schedule_kind == "at":
        at = datetime.fromisoformat(schedule["at"])
        done = campaign.fired_through is not None and at <= campaign.fired_through
        return [at] if at <= now and not done else []
    return cron.occurrences(schedule["cron"], get_settings().tz, since, now)


def fire_due(session: Session, now: datetime) -> list[int]:
    """Record the due occurrences of every scheduled campaign; the ids of the runs that fire now."""
    lateness = timedelta(minutes=get_settings().campaign_max_lateness_minutes)
    fired: list[int] = []
    campaigns = session.scalars(select(Campaign).where(Campaign.status == CampaignStatus.scheduled.value,
                                                       Campaign.schedule_kind.in_(("at", "cron")))
                                .with_for_update(skip_locked=True)).all()
    for campaign in campaigns:
        here: list[int] = []
        for at in occurrences(campaign, now):
            late = now - at > lateness
            status = RunStatus.missed if late else RunStatus.sending
            run_id = session.execute(_insert(session, CampaignRun.__table__).values(
                campaign_id=campaign.id, key=f"{campaign.schedule_kind}:{at.astimezone(timezone.utc).isoformat()}",
                status=status.value,
                due_at=at, created_at=now).on_conflict_do_nothing(index_elements=["campaign_id", "key"])
                .returning(CampaignRun.id)).scalar()
            if run_id is None:
                continue
            if late:
                log.warning("campaign %s: the run due %s is %s late: recorded missed, not fired", campaign.id,
                            at.isoformat(), now - at)
            else:
                here.append(run_id)
        campaign.fired_through = now
        if campaign.schedule_kind == "at" and datetime.fromisoformat(campaign.spec["schedule"]["at"]) <= now:
            campaign.status = CampaignStatus.running.value if here else CampaignStatus.completed.value
        fired += here
    return fired
