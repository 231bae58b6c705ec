"""Hooks into the profile store: count each event, and queue one re-check per committed transaction.

The listener runs inside the writer's transaction, so it only bumps counters (atomic upserts) and notes
which members changed how; the re-check job is enqueued once, after the commit. Events written by a
re-check (segment.entered/left, a rule's tag.added) queue at most `MAX_DEPTH` further rounds, so rules
that feed each other settle instead of looping.
"""
from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from membership import hooks
from segments import counters
from config.database import on_transaction_end
from config.queue import enqueue
from segments.graph import ALL, event_change_keys
from segments.materialise import drop_member
from segments.models import EventDayCount

PENDING = "segments_pending"
DEPTH = "segments_depth"  # set by re-check jobs on their session: how many rounds deep their writes are
MAX_DEPTH = 3


def note_change(session: Session, member_id: int, keys: set[str]) -> None:
    """Remember that `member_id` changed in `keys`; one re-check job goes out when the transaction commits."""
    depth = session.info.get(DEPTH, 0)
    if depth >= MAX_DEPTH:
        return
    pending = session.info.get(PENDING)
    if pending is None:
        from segments.jobs import recheck_members_job  # jobs imports listeners' neighbours, not the reverse

        pending = session.info[PENDING] = {}
        on_transaction_end(session, lambda: session.info.pop(PENDING, None))
        enqueue(recheck_members_job, pending, depth + 1, session=session)
    pending.setdefault(member_id, set()).update(keys)


@hooks.on_event
def on_timeline_event(session: Session, event) -> None:
    """Count the event and note the member for a re-check of the segments it can affect."""
    counters.record(session, event)
    note_change(session, event.member_id, event_change_keys(event.type, event.data or {}))
    if event.type == "message.received" and session.info.get(DEPTH, 0) < MAX_DEPTH:
        from segments.jobs import keyword_rules_job

        enqueue(keyword_rules_job, event.id, session=session)


@hooks.on_merge
def on_members_merged(session: Session, survivor_id: int, merged_id: int) -> None:
    """Recount the survivor's buckets from the moved timeline, and re-check it against every segment."""
    session.execute(delete(EventDayCount).where(EventDayCount.member_id == merged_id))
    counters.rebuild_member(session, survivor_id)
    drop_member(session, merged_id)
    note_change(session, survivor_id, {ALL})


def on_trait_changed(session: Session, member_id: int, key: str) -> None:
    """Re-check the segments that read this trait."""
    note_change(session, member_id, {f"trait:{key}"})


hooks.on_trait(on_trait_changed)



@hooks.on_tag
def on_tag_changed(session: Session, member_id: int, tag, added: bool, source: str) -> None:
    """Mirror a tag put on or taken off in Siyu (by hand, a rule, a channel code) on WeCom with mark_tag.

    Changes that came from WeCom (`wecom…` sources) are already there, and sending them back would echo.
    """
    if source.startswith("wecom"):
        return
    from segments.rules import queue_wecom  # rules imports the tag writers that call this hook

    rule_id = int(source.removeprefix("rule:")) if source.startswith("rule:") else None
    queue_wecom(session, member_id, tag.id, add=added, rule_id=rule_id)
