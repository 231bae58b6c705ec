"""Background jobs of the segments package (RQ or in-process): take ids, own their transaction, safe to run twice."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.database import get_engine, session_scope
from config.queue import enqueue
from config.types import utcnow
from membership.models import Identity, Relation, RelationStatus, Staff, Tag
from segments import failures, materialise, rules
from segments.exceptions import NotFound, Unevaluable
from segments.listeners import DEPTH
from segments.models import Segment, WecomTagChange

log = logging.getLogger(__name__)

MARK_TAG_MAX = 100  # tag ids per mark_tag call; WeCom rejects oversized add_tag/remove_tag lists
SYNC_BATCH = 500  # queued changes handled per sync run; a longer queue re-enqueues the job


def recheck_members_job(changes: dict, depth: int = 1) -> int:
    """Re-check the segments each member's changes can affect; writes of this round are `depth` deep."""
    with failures.translated(), session_scope() as session:
        session.info[DEPTH] = depth
        moves = materialise.recheck_members(session, {int(k): set(v) for k, v in changes.items()})
    return moves


def keyword_rules_job(event_id: int) -> list[int]:
    """Apply the keyword tag rules a `message.received` event matches."""
    with failures.translated(), session_scope() as session:
        session.info[DEPTH] = 1
        return rules.apply_keyword_rules(session, event_id)


@contextmanager
def _job_transaction() -> Iterator[Session]:
    with session_scope() as session:
        session.info[DEPTH] = 1
        yield session


def refresh_segment_job(segment_id: int) -> None:
    """Fully refresh one segment (a no-op once deleted); a failure no retry can fix is recorded, not raised."""
    try:
        if get_engine().dialect.name == "sqlite":
            # SQLite has one write lock for the whole database: hold it one chunk of members at a time.
            materialise.refresh_in_chunks(_job_transaction, segment_id)
            return
        with _job_transaction() as session:
            if session.get(Segment, segment_id) is not None:
                materialise.refresh_segment(session, segment_id)
    except NotFound:  # deleted between the two reads
        return
    except Unevaluable as exc:  # the same statement would fail the same way on every retry and every night
        with failures.translated(segment_id), session_scope() as session:
            failures.record(session, segment_id, exc.reason)


def _refreshable(query):
    # A segment recorded as unevaluable waits for a redefinition instead of failing again every night.
    return query.where(Segment.refresh_error.is_(None))


def refresh_relative_segments() -> int:
    """At the start of a business day: refresh every segment whose conditions move with the date."""
    with failures.translated(), session_scope() as session:
        ids = list(session.scalars(_refreshable(select(Segment.id).where(Segment.relative_dates))))
    for sid in ids:
        enqueue(refresh_segment_job, sid, queue="low")
    return len(ids)


def refresh_all_segments() -> int:
    """Refresh every segment (catches changes that write no event, such as a home store edited in SQL)."""
    with failures.translated(), session_scope() as session:
        ids = list(session.scalars(_refreshable(select(Segment.id))))
    for sid in ids:
        enqueue(refresh_segment_job, sid, queue="low")
    return len(ids)


def apply_rule_to_members_job(rule_id: int) -> int:
    """Tag everyone already in a new rule's segment."""
    from segments.models import SegmentMembership, TagRule

    with failures.translated(), session_scope() as session:
        session.info[DEPTH] = 1
        rule = session.get(TagRule, rule_id)
        if rule is None or rule.segment_id is None:
            return 0
        ids = session.scalars(select(SegmentMembership.member_id)
                              .where(SegmentMembership.segment_id == rule.segment_id))
        return sum(rules.apply(session, rule, mid) for mid in list(ids))


def _client():
    from bot.clients import wecom_client  # bot sits beside segments; imported late so tests can stand in

    return wecom_client()


def sync_wecom_tags(client=None) -> int:
    """Mirror queued rule tag changes on WeCom, one mark_tag per (staff, customer); the number of calls made."""
    client = client or _client()
    with failures.translated(), session_scope() as session:
        q = select(WecomTagChange).where(WecomTagChange.status == "pending").order_by(WecomTagChange.id)
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)  # two sync runs split the queue instead of sending twice
        changes = list(session.scalars(q.limit(SYNC_BATCH)))
        calls = _mark_tags(session, client, changes)
        more = len(changes) == SYNC_BATCH
    if more:
        enqueue(sync_wecom_tags, queue="low")
    return calls


def _mark_tags(session: Session, client, changes: list[WecomTagChange]) -> int:
    groups: dict[tuple[str, str], dict[str, tuple[bool, list]]] = defaultdict(dict)
    for change, target, tag_id in _targets(session, changes, client):
        if target is None or tag_id is None:
            change.status, change.done_at = "skipped", utcnow()
            change.error = "no WeCom tag id" if tag_id is None else "no active WeCom relation"
            continue
        # A later change of the same tag wins: entered then left before the sync is a removal.
        previous = groups[target].get(tag_id, (None, []))[1]
        groups[target][tag_id] = (change.add, [*previous, change])
    calls = 0
    for (userid, external_userid), tags in groups.items():
        add = [t for t, (is_add, _) in tags.items() if is_add]
        remove = [t for t, (is_add, _) in tags.items() if not is_add]
        rows = [c for _, cs in tags.values() for c in cs]
        try:
            for i in range(0, max(len(add), len(remove)), MARK_TAG_MAX):
                client.mark_tag(userid, external_userid, add_tag=add[i:i + MARK_TAG_MAX],
                                remove_tag=remove[i:i + MARK_TAG_MAX])
                calls += 1
        except Exception as exc:  # noqa: BLE001 - one customer's failure must not hold back the rest
            log.warning("mark_tag %s/%s: failed: %s", userid, external_userid, exc)
            for c in rows:
                c.status, c.error, c.done_at = "failed", str(exc)[:2000], utcnow()
            continue
        for c in rows:
            c.status, c.done_at = "done", utcnow()
    return calls


def _create_corp_tag(client, tag: Tag) -> str | None:
    """Create a tag made in Siyu as a WeCom corp tag (in its group, or 「Siyu」); its WeCom id."""
    try:
        answer = client.add_corp_tag([tag.name], group_name=tag.group_name or "Siyu")
    except Exception as exc:  # noqa: BLE001 - the changes are marked skipped with the reason
        log.warning("corp tag %s: not created on WeCom: %s", tag.name, exc)
        return None
    created = (answer.get("tag_group") or {}).get("tag") or []
    tag.wecom_tag_id = next((t["id"] for t in created if t.get("name") == tag.name), None)
    return tag.wecom_tag_id


def _targets(session: Session, changes: list[WecomTagChange], client):
    """Each change with its (staff userid, external_userid) and WeCom tag id."""
    member_ids = {c.member_id for c in changes}
    external = dict(session.execute(select(Identity.member_id, Identity.value).where(
        Identity.member_id.in_(member_ids), Identity.type == "wecom_external")).all())
    staff: dict[int, str] = {}
    for mid, userid in session.execute(
            select(Relation.member_id, Staff.userid).join(Staff, Staff.id == Relation.staff_id)
            .where(Relation.member_id.in_(member_ids), Relation.status == RelationStatus.active.value)
            .order_by(Relation.added_at)):
        staff.setdefault(mid, userid)  # corp tags are shared: the earliest active relation marks for all
    tag_ids = {tag.id: tag.wecom_tag_id or _create_corp_tag(client, tag)
               for tag in session.scalars(select(Tag).where(Tag.id.in_({c.tag_id for c in changes})))}
    for change in changes:
        ext, userid = external.get(change.member_id), staff.get(change.member_id)
        target = (userid, ext) if ext and userid else None
        yield change, target, tag_ids.get(change.tag_id)
