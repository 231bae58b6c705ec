"""The engine's minute tick (queued by `siyu scheduler`): fire due occurrences, restart what was interrupted,
start trigger entries whose delayed job was lost, and poll results."""
from __future__ import annotations

import logging

from campaigns import clock, triggers
from campaigns.fanout import enqueue_run, due_work, poll_job
from campaigns.schedule import fire_due
from config.database import session_scope
from config.queue import enqueue

log = logging.getLogger(__name__)


def tick() -> dict:
    """One pass of the engine's housekeeping; counts of what it queued."""
    now = clock.now()
    with session_scope() as s:
        fired = fire_due(s, now)
        entries = triggers.due_entries(s, now)
    for run_id in fired:
        enqueue_run(run_id)
    for entry_id in entries:
        enqueue(triggers.enter_job, entry_id, job_id=f"campaign-entry-{entry_id}-{int(now.timestamp()) // 60}")
    runs, polls = due_work(now)
    for run_id in runs:
        enqueue_run(run_id, tag=f"tick{int(now.timestamp()) // 60}")
    for send_id in polls:
        enqueue(poll_job, send_id, queue="low", job_id=f"campaign-poll-{send_id}-{int(now.timestamp()) // 60}",
                retries=0)
    return {"fired": len(fired), "entries": len(entries), "runs": len(runs), "polls": len(polls)}
