"""The WeCom side of tag changes made in Siyu: queued in `segment_wecom_tag_changes`, mirrored with mark_tag.

The `on_tag` listener queues a change in the writer's transaction; one sync job per transaction goes out
after it commits, and a schedule picks up what a lost enqueue left behind.
"""
from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.clients import wecom_client
from config.database import advisory_locks, on_transaction_end, session_scope
from config.queue import enqueue
from config.types import utcnow
from membership.models import Identity, Relation, RelationStatus, Staff, Tag
from membership.service import contact_lock_key
from segments import failures
from segments.models import WecomTagChange

log = logging.getLogger(__name__)

MARK_TAG_MAX = 100  # tag ids per mark_tag call; WeCom rejects oversized add_tag/remove_tag lists
SYNC_BATCH = 500  # queued changes handled per sync run; a longer queue re-enqueues the job


def queue_wecom(session: Session, member_id: int, tag_id: int, *, add: bool, rule_id: int | None) -> None:
    """Queue a tag change for WeCom; one sync job is enqueued per transaction, after it commits."""
    session.add(WecomTagChange(member_id=member_id, tag_id=tag_id, add=add, rule_id=rule_id))
    if not session.info.get("segments_wecom_sync"):
        session.info["segments_wecom_sync"] = True
        on_transaction_end(session, lambda: session.info.pop("segments_wecom_sync", None))
        enqueue(sync_wecom_tags, queue="low", session=session)


def sync_wecom_tags() -> int:
    """Job: mirror queued tag changes on WeCom, one mark_tag per (staff, customer); the number of calls made."""
    client = wecom_client()
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
    # Each customer's lock, as a callback batch takes it: a batch that read the contact before this change must
    # apply its events before WeCom changes (an API change sends no callback to correct a stale read).
    advisory_locks(session, {contact_lock_key(external_userid) for _, external_userid in groups})
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
