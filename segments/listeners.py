"""Listeners on the profile store: count each event, and queue one re-check per committed transaction.

`siyu.wiring.install()` registers them with `membership.hooks` in every process; importing this module
registers nothing. A listener runs inside the writer's transaction, so it only bumps counters (atomic
upserts) and notes which members changed how; the re-check job (below) is enqueued once, after the commit.
Events written by a re-check queue at most `rounds.MAX_DEPTH` further rounds, so rules that feed each other
settle instead of looping.
"""
from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from config.database import on_transaction_end
from config.queue import enqueue
from segments import counters, failures, materialise, rounds, rules, wecom_tags
from segments.graph import ALL, event_change_keys
from segments.models import EventDayCount

PENDING = "segments_pending"


def note_change(session: Session, member_id: int, keys: set[str]) -> None:
    """Remember that `member_id` changed in `keys`; one re-check job goes out when the transaction commits."""
    depth = rounds.depth(session)
    if depth >= rounds.MAX_DEPTH:
        return
    pending = session.info.get(PENDING)
    if pending is None:
        pending = session.info[PENDING] = {}
        on_transaction_end(session, lambda: session.info.pop(PENDING, None))
        enqueue(recheck_members_job, pending, depth + 1, session=session)
    pending.setdefault(member_id, set()).update(keys)


def on_timeline_event(session: Session, event) -> None:
    """Count the event and note the member for a re-check of the segments it can affect."""
    counters.record(session, event)
    note_change(session, event.member_id, event_change_keys(event.type, event.data or {}))
    if event.type == "message.received" and rounds.depth(session) < rounds.MAX_DEPTH:
        enqueue(keyword_rules_job, event.id, session=session)


def on_members_merged(session: Session, survivor_id: int, merged_id: int) -> None:
    """Recount the survivor's buckets from the moved timeline, and re-check it against every segment."""
    session.execute(delete(EventDayCount).where(EventDayCount.member_id == merged_id))
    counters.rebuild_member(session, survivor_id)
    materialise.drop_member(session, merged_id)
    note_change(session, survivor_id, {ALL})


def on_trait_changed(session: Session, member_id: int, key: str) -> None:
    """Re-check the segments that read this trait."""
    note_change(session, member_id, {f"trait:{key}"})


def on_tag_changed(session: Session, member_id: int, tag, added: bool, source: str) -> None:
    """Mirror a tag put on or taken off in Siyu (by hand, a rule, a channel code) on WeCom with mark_tag.

    Changes that came from WeCom (`wecom…` sources) are already there, and sending them back would echo.
    """
    if source.startswith("wecom"):
        return
    rule_id = int(source.removeprefix("rule:")) if source.startswith("rule:") else None
    wecom_tags.queue_wecom(session, member_id, tag.id, add=added, rule_id=rule_id)


def recheck_members_job(changes: dict, depth: int = 1) -> int:
    """Job: re-check the segments each member's changes can affect; writes of this round are `depth` deep."""
    with failures.translated(), rounds.job_scope(depth) as session:
        return materialise.recheck_members(session, {int(k): set(v) for k, v in changes.items()})


def keyword_rules_job(event_id: int) -> list[int]:
    """Job: apply the keyword tag rules a `message.received` event matches."""
    with failures.translated(), rounds.job_scope() as session:
        return rules.apply_keyword_rules(session, event_id)
