"""The fan-out jobs: write a run's ledger, then claim and send its chunks until none is due; poll results.

Jobs take ids and are safe to run twice, or side by side on several workers: the ledger is written once,
each chunk is claimed by one worker at a time, and an interrupted chunk is reconciled, never resent blindly.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime

from sqlalchemy import exists, select, update

from campaigns import clock
from campaigns.actions import action_of
from campaigns.claims import claim_next
from campaigns.ledger import plan
from campaigns.models import Campaign, CampaignRun, CampaignSend, CampaignStatus, RunStatus, SendStatus
from config.database import session_scope
from config.queue import enqueue

log = logging.getLogger(__name__)

OPEN = (SendStatus.planned.value, SendStatus.claimed.value, SendStatus.unknown.value)
ONE_RUN = ("manual", "at")  # schedule kinds whose campaign completes with its run


SLICE_SECONDS = 60.0  # a run job's turn on a worker (RQ ends a job after 180 s): then it queues its sequel


def run_job(run_id: int) -> str:
    """Write the run's ledger (once) and send every due chunk of it; a large run goes on in a sequel job."""
    with session_scope() as s:
        run = s.get(CampaignRun, run_id)
        if run is None or run.status != RunStatus.sending.value:
            return "not sending"
        campaign = s.get(Campaign, run.campaign_id)
        if campaign.status == CampaignStatus.cancelled.value:
            return "cancelled"
    deadline = time.monotonic() + SLICE_SECONDS
    plan(run_id, now=clock.now(), deadline=deadline)  # batch by batch, each its own transaction
    with session_scope() as s:
        planned = s.scalar(select(CampaignRun.planned_at).where(CampaignRun.id == run_id)) is not None
    if not planned:
        return _sequel(run_id, "planning")
    return fan_out(run_id, deadline=deadline)


def _sequel(run_id: int, what: str) -> str:
    enqueue_run(run_id, tag=f"more{time.time_ns()}")  # claims make a second job on the run harmless
    return f"{what} goes on in another job"


def fan_out(run_id: int, limit: int | None = None, deadline: float | None = None) -> str:
    """Claim and send the run's due chunks, one at a time, until none is due (or `limit` were handled; past
    `deadline`, a sequel job goes on)."""
    handled = 0
    while limit is None or handled < limit:
        if deadline is not None and time.monotonic() > deadline:
            return _sequel(run_id, f"{handled} chunks sent; the fan-out")
        with session_scope() as s:
            work = claim_next(s, run_id=run_id, now=clock.now())
        if work is None:
            break
        handled += 1
        if work.kind == "wait":  # quiet hours: every chunk waits for their end
            enqueue_run(run_id, at=work.until)
            return "waiting"
        if work.kind == "call":
            action_of(work.action).call(work)
        elif work.kind == "reconcile":
            action_of(work.action).reconcile(work)
    finish_if_sent(run_id)
    return f"{handled} chunks"


def enqueue_run(run_id: int, at: datetime | None = None, session=None, tag: str = "") -> None:
    """Queue the run's job (now or at `at`), once per run, time and `tag`.

    The tick tags its restarts by minute: the id of a job whose worker was killed stays "started" in RQ until
    RQ cleans it up, and must not keep the run from being picked up again (claims make a second job harmless).
    """
    suffix = (f"-{int(at.timestamp())}" if at else "") + (f"-{tag}" if tag else "")
    enqueue(run_job, run_id, at=at, job_id=f"campaign-run-{run_id}{suffix}", session=session)


def finish_if_sent(run_id: int) -> bool:
    """Mark the run sent once no chunk is open; a one-off campaign completes with it."""
    now = clock.now()
    with session_scope() as s:
        open_ = exists().where(CampaignSend.run_id == run_id, CampaignSend.status.in_(OPEN))
        run = CampaignRun
        done = s.execute(update(run).where(run.id == run_id, run.status == RunStatus.sending.value,
                                           run.planned_at.is_not(None), ~open_)
                         .values(status=RunStatus.sent.value, finished_at=now)
                         .returning(CampaignRun.campaign_id)).scalar()
        if done is None:
            return False
        s.execute(update(Campaign).where(Campaign.id == done, Campaign.status == CampaignStatus.running.value,
                                         Campaign.schedule_kind.in_(ONE_RUN))
                  .values(status=CampaignStatus.completed.value, updated_at=now))
        log.info("campaign run %s: every chunk sent or settled", run_id)
        return True


def poll_job(send_id: int) -> str:
    """Poll one submitted chunk's results."""
    with session_scope() as s:
        spec = s.scalar(select(Campaign.spec).join(CampaignRun, CampaignRun.campaign_id == Campaign.id)
                        .join(CampaignSend, CampaignSend.run_id == CampaignRun.id).where(CampaignSend.id == send_id))
    if spec is None:
        return "gone"
    return action_of(spec.get("action")).poll(send_id)


def due_work(now: datetime) -> tuple[list[int], list[int]]:
    """Runs with a chunk due (planned and due, claim expired, unknown, or not planned yet) and chunks due a poll."""
    s_ = CampaignSend
    with session_scope() as s:
        running = select(CampaignRun.id).join(Campaign, Campaign.id == CampaignRun.campaign_id).where(
            CampaignRun.status == RunStatus.sending.value, Campaign.status == CampaignStatus.running.value)
        unplanned = set(s.scalars(running.where(CampaignRun.planned_at.is_(None))))
        due = set(s.scalars(select(s_.run_id).where(
            s_.run_id.in_(running),
            ((s_.status == SendStatus.planned.value) & (s_.due_at <= now))
            | ((s_.status == SendStatus.claimed.value) & (s_.lease_until < now))
            | ((s_.status == SendStatus.unknown.value) & (s_.due_at <= now))).distinct()))
        stale = set(s.scalars(running.where(CampaignRun.planned_at.is_not(None),
                                            ~exists().where(s_.run_id == CampaignRun.id, s_.status.in_(OPEN)))))
        polls = list(s.scalars(select(s_.id).where(s_.status == SendStatus.submitted.value, s_.next_poll_at <= now)
                               .order_by(s_.id).limit(10_000)))
    return sorted(unplanned | due | stale), polls
