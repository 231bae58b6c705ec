"""change_external_tag: the local tag catalogue follows WeCom's corp tags.

Every kind (create, update, delete, shuffle; tag or group) re-reads the whole corp tag list, so events
arriving late or out of order still leave the catalogue equal to WeCom's.
"""
from __future__ import annotations

import logging

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.clients import wecom_client
from membership.models import MemberTag, Tag
from membership.tags import ensure_tag, get_tag, untag_member
from webhooks.dispatch import Event, handles

log = logging.getLogger(__name__)
TAG = ("wecom", "event", "change_external_tag")


def reconcile_tags(session: Session) -> None:
    """Make local WeCom-linked tags equal to WeCom's corp tag list: add, rename, regroup, delete."""
    groups = wecom_client().list_corp_tags().get("tag_group") or []
    seen: set[str] = set()
    for group in groups:
        for t in group.get("tag") or []:
            if t.get("deleted"):
                continue
            seen.add(t["id"])
            _upsert(session, t["id"], t.get("name") or t["id"], group.get("group_name") or "")
    for tag in session.scalars(select(Tag).where(Tag.wecom_tag_id.is_not(None))).all():
        if tag.wecom_tag_id not in seen:
            _remove(session, tag)


def _upsert(session: Session, wecom_id: str, name: str, group: str) -> None:
    tag = session.scalar(select(Tag).where(Tag.wecom_tag_id == wecom_id))
    if tag is None:
        ensure_tag(session, name, group, wecom_tag_id=wecom_id)
    elif (tag.name, tag.group_name) != (name, group):
        clash = get_tag(session, name, group)
        if clash is not None and clash.id != tag.id:
            log.warning("tag %s: renamed to %s/%s, which exists locally; kept as is", wecom_id, group, name)
            return
        tag.name, tag.group_name = name, group
        session.flush()


def _remove(session: Session, tag: Tag) -> None:
    for member_id in session.scalars(select(MemberTag.member_id).where(MemberTag.tag_id == tag.id)).all():
        untag_member(session, member_id, tag, source="wecom")
    session.execute(delete(MemberTag).where(MemberTag.tag_id == tag.id))
    session.delete(tag)
    session.flush()


@handles(*TAG, "create")
@handles(*TAG, "update")
@handles(*TAG, "delete")
@handles(*TAG, "shuffle")
def corp_tags_changed(session: Session, ev: Event) -> None:
    """A corp tag or tag group changed in WeCom."""
    reconcile_tags(session)
