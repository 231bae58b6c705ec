"""Trigger campaigns: a member enters when the event is written to their timeline, and is sent to after
`delay_minutes`, once per campaign (or once per event when re-entry is allowed): the entry's unique key
says so, in the transaction that writes the event."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import clock
from campaigns.fanout import enqueue_run
from campaigns.ledger import _insert
from campaigns.models import Campaign, CampaignRun, CampaignStatus, RunStatus, TriggerEntry
from config.database import per_transaction, session_scope
from config.queue import enqueue

log = logging.getLogger(__name__)

LISTENING = (CampaignStatus.running.value, CampaignStatus.paused.value)  # a paused campaign's entries wait


def _matches(where: dict, data: dict) -> bool:
    return all(data.get(k) == v for k, v in (where or {}).items())


def on_timeline_event(session: Session, event) -> None:
    """Listener (bound in siyu.wiring): enter the member into every listening campaign this event triggers."""
    campaigns = per_transaction(session, ("trigger-campaigns", event.type), lambda: session.execute(
        select(Campaign.id, Campaign.spec).where(Campaign.trigger_event == event.type,
                                                 Campaign.status.in_(LISTENING))).all())
    for campaign in campaigns:
        spec = campaign.spec["schedule"]["trigger"]
        if not _matches(spec.get("where") or {}, event.data or {}):
            continue
        key = f"event:{event.id}" if spec.get("reentry") else f"member:{event.member_id}"
        due = clock.now() + timedelta(minutes=int(spec.get("delay_minutes") or 0))
        entry_id = session.execute(_insert(session, TriggerEntry.__table__).values(
            campaign_id=campaign.id, member_id=event.member_id, event_id=event.id, entry_key=key, due_at=due,
            created_at=clock.now()).on_conflict_do_nothing(index_elements=["campaign_id", "entry_key"])
            .returning(TriggerEntry.id)).scalar()
        if entry_id is None:
            continue  # entered before: once per campaign
        log.info("campaign %s: member %s entered (event %s), due %s", campaign.id, event.member_id, event.id,
                 due.isoformat())
        enqueue(enter_job, entry_id, at=due, job_id=f"campaign-entry-{entry_id}", session=session)


def enter_job(entry_id: int) -> str:
    """Start the run of one trigger entry once it is due (early: queued again for its time)."""
    now = clock.now()
    with session_scope() as s:
        entry = s.get(TriggerEntry, entry_id, with_for_update=True)
        if entry is None:
            return "gone"
        if entry.due_at > now:
            enqueue(enter_job, entry_id, at=entry.due_at, job_id=f"campaign-entry-{entry_id}", session=s)
            return "early"
        if entry.run_id is None:
            campaign = s.get(Campaign, entry.campaign_id)
            if campaign.status not in LISTENING:
                return "campaign not listening"
            run_id = s.execute(_insert(s, CampaignRun.__table__).values(
                campaign_id=entry.campaign_id, key=f"entry:{entry.id}", status=RunStatus.sending.value,
                due_at=entry.due_at, member_id=entry.member_id, created_at=now)
                .on_conflict_do_nothing(index_elements=["campaign_id", "key"]).returning(CampaignRun.id)).scalar()
            if run_id is None:
                run_id = s.scalar(select(CampaignRun.id).where(CampaignRun.campaign_id == entry.campaign_id,
                                                               CampaignRun.key == f"entry:{entry.id}"))
            entry.run_id = run_id
        enqueue_run(entry.run_id, session=s)
    return "started"


def due_entries(session: Session, now) -> list[int]:
    """Entries due whose run was never started (their delayed job was lost with a restart or a flushed Redis)."""
    return list(session.scalars(select(TriggerEntry.id).where(TriggerEntry.run_id.is_(None), TriggerEntry.due_at <= now)
                                .order_by(TriggerEntry.id).limit(10_000)))
