"""The ledger, written before any side effect: one row per (run, member, step) under a deterministic key.

Planning is one `INSERT … SELECT … ON CONFLICT DO NOTHING` from the audience as it is at run time, with
each member's owning staff member (the most recent active relation, else a staff member of the home store),
the identity the action sends to (campaigns/channels.py: a WeCom external contact, an OA or MP openid) and
their chunk of that staff member's customers; then one send row per (run, staff member, chunk) — one per
member for actions Tencent takes one member per call (OA template, MP subscribe messages). Only
the transaction that stamps `planned_at` plans, so a launch repeated, or two workers racing, find the
ledger written and add nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Integer, String, and_, case, cast, exists, func, literal, select, text, true, update
from sqlalchemy.orm import Session, aliased

from campaigns.channels import NO_SUBSCRIBE_GRANT, OA_UNFOLLOWED, WECOM, Addressing, addressing_of
from campaigns.models import CampaignRun, CampaignSend, CampaignStep, SendStatus, StepStatus
from membership.models import Identity, Member, Relation, RelationStatus, Staff, SubscribeGrant, TimelineEvent
from segments.models import SegmentMembership

log = logging.getLogger(__name__)

CHUNK = 10_000  # add_msg_template takes at most 10,000 external_userid
NO_WECOM_CONTACT = WECOM.missing
NO_STAFF = "no_staff"


def _insert(session: Session, table):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def audience_of(segment_id: int | None, member_id: int | None):
    """The member ids a run reaches: the segment's members now, narrowed to one member for a trigger run."""
    q = select(Member.id).where(Member.merged_into_id.is_(None))
    if segment_id is not None:
        sm = SegmentMembership
        q = q.where(Member.id.in_(select(sm.member_id).where(sm.segment_id == segment_id)))
    if member_id is not None:
        q = q.where(Member.id == member_id)
    return q


def _addressed(addr: Addressing) -> list:
    cond = [Identity.type == addr.identity]
    return cond + ([Identity.scope == addr.scope] if addr.scope is not None else [])


def _owners_one_by_one(members, addr: Addressing):
    # One member (a trigger run): three index lookups beat any set-based pass over every relation.
    m = Member
    owner = (select(Relation.staff_id).join(Staff, Staff.id == Relation.staff_id)
             .where(Relation.member_id == m.id, Relation.status == RelationStatus.active.value, Staff.active)
             .order_by(Relation.added_at.desc(), Relation.id.desc()).limit(1).scalar_subquery())
    home = (select(Staff.id).where(Staff.store_id == m.store_id, Staff.active, m.store_id.is_not(None))
            .order_by(Staff.id).limit(1).scalar_subquery())
    ext = (select(Identity.value).where(Identity.member_id == m.id, *_addressed(addr))
           .order_by(Identity.id).limit(1).scalar_subquery())
    return (select(m.id.label("member_id"), m.store_id.label("store_id"),
                   func.coalesce(owner, home).label("staff_id"), ext.label("ext"))
            .where(m.id.in_(members)).subquery())


def _owners_all_at_once(members, addr: Addressing):
    # A whole audience: hash joins over ranked relations instead of per-member subqueries.
    m, r = Member, Relation
    ranked = (select(r.member_id, r.staff_id, func.row_number().over(
        partition_by=r.member_id, order_by=(r.added_at.desc(), r.id.desc())).label("rn"))
        .join(Staff, Staff.id == r.staff_id).where(r.status == RelationStatus.active.value, Staff.active)
        .where(r.member_id.in_(members)).subquery())
    owner = select(ranked.c.member_id, ranked.c.staff_id).where(ranked.c.rn == 1).subquery()
    home = (select(Staff.store_id, func.min(Staff.id).label("staff_id"))
            .where(Staff.active, Staff.store_id.is_not(None)).group_by(Staff.store_id).subquery())
    ids = (select(Identity.member_id, func.min(Identity.value).label("ext"))
           .where(*_addressed(addr), Identity.member_id.in_(members))
           .group_by(Identity.member_id).subquery())
    return (select(m.id.label("member_id"), m.store_id.label("store_id"),
                   func.coalesce(owner.c.staff_id, home.c.staff_id).label("staff_id"), ids.c.ext.label("ext"))
            .select_from(m.__table__.outerjoin(owner, owner.c.member_id == m.id)
                         .outerjoin(home, home.c.store_id == m.store_id).outerjoin(ids, ids.c.member_id == m.id))
            .where(m.id.in_(members)).subquery())


def _ledger_select(run: CampaignRun, step: str, members, chunk: int, addr: Addressing):
    owners = _owners_one_by_one if run.member_id is not None else _owners_all_at_once
    inner = owners(members, addr)
    needs = [inner.c.ext.is_not(None)]
    reasons = [(inner.c.ext.is_(None), addr.missing)]
    if addr.staff_required:
        needs.append(inner.c.staff_id.is_not(None))
        reasons.append((inner.c.staff_id.is_(None), NO_STAFF))
    if addr.follow_events is not None:  # unfollowed since: Tencent would refuse (43004), so no call is made
        follow, unfollow = addr.follow_events
        e1, e2 = aliased(TimelineEvent), aliased(TimelineEvent)
        later = exists().where(e2.member_id == e1.member_id, e2.type == follow, e2.at > e1.at)
        left = exists().where(e1.member_id == inner.c.member_id, e1.type == unfollow, ~later)
        needs.append(~left)
        reasons.append((left, OA_UNFOLLOWED))
    if addr.grant_template is not None:  # no grant left now: skipped at once (the send consumes one, or skips)
        g = SubscribeGrant
        granted = exists().where(g.member_id == inner.c.member_id, g.template_id == addr.grant_template,
                                 g.remaining > 0)
        needs.append(granted)
        reasons.append((~granted, NO_SUBSCRIBE_GRANT))
    sendable = and_(*needs)
    status = case((sendable, StepStatus.planned.value), else_=StepStatus.skipped.value)
    reason = case(*reasons, else_=None)
    # The n-th chunk of each staff member's sendable customers, in member order: one add_msg_template each.
    position = func.row_number().over(partition_by=(inner.c.staff_id, sendable), order_by=inner.c.member_id) - 1
    key = literal(f"run:{run.id}:member:") + cast(inner.c.member_id, String) + literal(f":{step}")
    return select(key.label("key"), inner.c.member_id, status.label("status"), reason.label("reason"),
                  inner.c.staff_id, inner.c.store_id, inner.c.ext.label("external_userid"),
                  case((sendable, cast(position // chunk, Integer)), else_=None).label("chunk")).subquery()


def plan(session: Session, *, run_id: int, campaign_id: int, segment_id: int | None, step: str,
         now: datetime, chunk: int | None = None, action: dict | None = None) -> int:
    """Write the run's ledger and send rows once; the number of rows written (0: planned before)."""
    addr = addressing_of(action) if action is not None else WECOM
    chunk = 1 if addr.per_member else (chunk or CHUNK)
    won = session.execute(update(CampaignRun).where(CampaignRun.id == run_id, CampaignRun.planned_at.is_(None))
                          .values(planned_at=now).returning(CampaignRun.id)).scalar()
    if won is None:
        return 0
    run = session.get(CampaignRun, run_id, populate_existing=True)
    staged = _ledger_select(run, step, audience_of(segment_id, run.member_id), chunk, addr)
    sends = CampaignSend.__table__
    groups = select(staged.c.staff_id, staged.c.chunk).where(staged.c.chunk.is_not(None)).distinct().subquery()
    session.execute(_insert(session, sends).from_select(
        ["run_id", "staff_id", "chunk", "status", "due_at", "attempt"],
        select(literal(run_id), groups.c.staff_id, groups.c.chunk, literal(SendStatus.planned.value),
               literal(now, CampaignSend.due_at.type), literal(0)).where(true()))
        .on_conflict_do_nothing(index_elements=["run_id", "staff_id", "chunk"]))
    # Each row points at its send through one join (no UPDATE pass over the ledger afterwards).
    send = CampaignSend
    same_staff = send.staff_id == staged.c.staff_id
    if not addr.staff_required:  # members without an owner share the unowned sends (still a hash join)
        same_staff = func.coalesce(send.staff_id, 0) == func.coalesce(staged.c.staff_id, 0)
    joined = (select(staged.c.key, literal(run_id), literal(campaign_id), staged.c.member_id, literal(step),
                     staged.c.status, staged.c.reason, staged.c.staff_id, staged.c.store_id,
                     staged.c.external_userid, send.id, literal(now, CampaignStep.updated_at.type))
              .select_from(staged.outerjoin(send, and_(send.run_id == run_id, same_staff,
                                                       send.chunk == staged.c.chunk)))
              .where(true()))
    cols = ["key", "run_id", "campaign_id", "member_id", "step", "status", "reason", "staff_id", "store_id",
            "external_userid", "send_id", "updated_at"]
    session.execute(_insert(session, CampaignStep.__table__).from_select(cols, joined)
                    .on_conflict_do_nothing(index_elements=["key"]))
    if session.get_bind().dialect.name == "postgresql":
        # The ledger went from nothing to the whole audience in this transaction: without fresh statistics
        # the claims' statements would be planned for an empty table.
        session.execute(text("ANALYZE campaign_steps"))
    written = session.scalar(select(func.count()).select_from(CampaignStep).where(CampaignStep.run_id == run_id))
    log.info("campaign run %s: ledger written, %d rows", run_id, written)
    return written
