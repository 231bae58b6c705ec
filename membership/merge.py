"""Merging two members proven to be one person. The older survives; the other points at it."""
from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config.database import upsert
from membership import hooks
from membership.models import (
    GroupChatMember, Identity, Member, MemberTag, MergeReview, Relation, RelationStatus, SubscribeGrant, TimelineEvent,
    Trait,
)
from membership.timeline import record_event, recompute_derived_traits
from membership.traits import is_derived

log = logging.getLogger(__name__)


def verified_phones(session: Session, member_id: int) -> set[str]:
    """The verified phone numbers a member holds."""
    return set(session.scalars(
        select(Identity.value).where(Identity.member_id == member_id, Identity.type == "phone", Identity.verified)
    ))


def merge_members(session: Session, survivor: Member, other: Member, reason: str) -> bool:
    """Fold `other` into `survivor`; False (and a review row) when both hold different verified phones."""
    if survivor.id == other.id or other.merged_into_id is not None:
        return False
    mine, theirs = verified_phones(session, survivor.id), verified_phones(session, other.id)
    if mine and theirs and not (mine & theirs):
        _ask_for_review(session, survivor.id, other.id, f"{reason}; both carry a different verified phone")
        return False
    log.info("member %s: merging member %s into it (%s)", survivor.id, other.id, reason)
    session.execute(update(Identity).where(Identity.member_id == other.id).values(member_id=survivor.id))
    _move_tags(session, survivor.id, other.id)
    _move_relations(session, survivor.id, other.id)
    _move_traits(session, survivor.id, other.id)
    _move_grants(session, survivor.id, other.id)
    session.execute(update(TimelineEvent).where(TimelineEvent.member_id == other.id).values(member_id=survivor.id))
    session.execute(update(GroupChatMember).where(GroupChatMember.member_id == other.id).values(member_id=survivor.id))
    session.execute(update(Member).where(Member.merged_into_id == other.id).values(merged_into_id=survivor.id))
    survivor.name = survivor.name or other.name
    survivor.store_id = survivor.store_id or other.store_id
    other.merged_into_id = survivor.id
    session.flush()
    recompute_derived_traits(session, survivor.id)
    for listener in hooks.MERGE_LISTENERS:
        listener(session, survivor.id, other.id)
    record_event(session, survivor.id, "member.merged", {"merged_member_id": other.id, "reason": reason})
    return True


def _ask_for_review(session: Session, a: int, b: int, reason: str) -> None:
    lo, hi = sorted((a, b))
    log.warning("member %s: not merged with member %s automatically (%s); queued for review", lo, hi, reason)
    upsert(session, MergeReview.__table__, {"member_id": lo, "other_member_id": hi, "reason": reason, "status": "open"},
           ["member_id", "other_member_id"])


def _move_tags(session: Session, survivor_id: int, other_id: int) -> None:
    have = set(session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == survivor_id)))
    for mt in session.scalars(select(MemberTag).where(MemberTag.member_id == other_id)).all():
        if mt.tag_id not in have:
            session.add(MemberTag(member_id=survivor_id, tag_id=mt.tag_id, source=mt.source, created_at=mt.created_at))
        session.delete(mt)
    session.flush()


def _move_relations(session: Session, survivor_id: int, other_id: int) -> None:
    mine = {r.staff_id: r for r in session.scalars(select(Relation).where(Relation.member_id == survivor_id))}
    for rel in session.scalars(select(Relation).where(Relation.member_id == other_id)).all():
        kept = mine.get(rel.staff_id)
        if kept is None:
            rel.member_id = survivor_id
            continue
        # Both were tied to the same staff member: keep one row, active if either is, from the earliest add.
        if rel.status == RelationStatus.active.value and kept.status != RelationStatus.active.value:
            kept.status, kept.ended_at, kept.state = rel.status, None, rel.state or kept.state
        kept.added_at = min(kept.added_at, rel.added_at)
        session.delete(rel)
    session.flush()


def _move_traits(session: Session, survivor_id: int, other_id: int) -> None:
    have = set(session.scalars(select(Trait.key).where(Trait.member_id == survivor_id)))
    for trait in session.scalars(select(Trait).where(Trait.member_id == other_id)).all():
        if trait.key not in have and not is_derived(trait.key):
            session.add(Trait(member_id=survivor_id, key=trait.key, value=trait.value, text_value=trait.text_value,
                              number_value=trait.number_value, time_value=trait.time_value))
        session.delete(trait)
    session.flush()


def _move_grants(session: Session, survivor_id: int, other_id: int) -> None:
    # One person's popups: what either record was granted and has not used stays usable.
    grants = select(SubscribeGrant).where(SubscribeGrant.member_id == survivor_id)
    mine = {g.template_id: g for g in session.scalars(grants)}
    for g in session.scalars(select(SubscribeGrant).where(SubscribeGrant.member_id == other_id)).all():
        kept = mine.get(g.template_id)
        if kept is None:
            session.add(SubscribeGrant(member_id=survivor_id, template_id=g.template_id, remaining=g.remaining,
                                       granted_at=g.granted_at, used_at=g.used_at))
        else:
            kept.remaining += g.remaining
        session.delete(g)
    session.flush()
