"""The ledger, written before any side effect: one row per (run, member, step) under a deterministic key.

Planning is set-based and goes through the audience in batches of members (member id order), one short
transaction each: the batch's members with their owning staff member (the most recent active relation, else
a staff member of the home store), WeCom contact and holdout bucket go into temporary tables; the sendable
ones take their month's mass-message quota reservation (the month of the send's due time, in SIYU_TIMEZONE);
each is placed in the n-th chunk of its staff member's sendable customers (counting on from the earlier
batches); then one `INSERT … SELECT … ON CONFLICT DO NOTHING` writes the send rows (one per staff member and
chunk) and one the ledger rows, joined to their send. The run's row is the lock and `planned_through` the
cursor, so a planner killed mid-way, or two racing, continue where the last committed batch ended; the run
counts as planned (`planned_at`) only after the last batch, and no chunk is claimed before.

What each member is sent to comes from the action (campaigns/channels.py): a WeCom external contact through
their owning staff member, or an OA or MP openid (no owner needed, one member per send row, no WeCom quota;
unfollowed OA members and members without the subscribe grant are skipped at once).
"""
from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime

from sqlalchemy import (
    BigInteger, Boolean, Column, Integer, MetaData, String, Table, and_, case, cast, exists, func, literal,
    literal_column, select, text, true, update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement

from campaigns import policy as contact
from campaigns.channels import NO_SUBSCRIBE_GRANT, OA_UNFOLLOWED, WECOM, Addressing, addressing_of
from campaigns.models import (
    Campaign, CampaignRun, CampaignSend, CampaignStep, MassQuota, RunStatus, SendStatus, StepStatus,
)
from config.database import session_scope
from config.settings import get_settings
from config.write_behind import flush_behind
from membership.models import Identity, Member, Relation, RelationStatus, Staff, SubscribeGrant, TimelineEvent
from segments.models import SegmentMembership

log = logging.getLogger(__name__)

CHUNK = 10_000  # add_msg_template takes at most 10,000 external_userid
BATCH = 50_000  # members planned per transaction
NO_WECOM_CONTACT = WECOM.missing
NO_STAFF = "no_staff"
HOLDOUT = "holdout"
BUCKETS = 10_000  # holdout buckets: a percent holds out percent × 100 of them


def _insert(session: Session, table):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


# -- holdout: a hash of (campaign, member), so a re-plan holds out the same members ------------------------
def holdout_bucket(campaign_id: int, member_id: int) -> int:
    """The member's bucket in [0, BUCKETS) for the campaign: md5 of "campaign:member", its first 32 bits."""
    return int(hashlib.md5(f"{campaign_id}:{member_id}".encode()).hexdigest()[:8], 16) % BUCKETS


class _Bucket(FunctionElement):
    type = BigInteger()
    inherit_cache = True


@compiles(_Bucket, "postgresql")
def _bucket_pg(element, compiler, **kw):
    c, m = (compiler.process(a, **kw) for a in element.clauses)
    return f"mod(('x' || substr(md5(CAST({c} AS text) || ':' || CAST({m} AS text)), 1, 8))::bit(32)::bigint, {BUCKETS})"


@compiles(_Bucket)
def _bucket_other(element, compiler, **kw):  # SQLite: the same function, registered on the connection
    c, m = (compiler.process(a, **kw) for a in element.clauses)
    return f"siyu_holdout_bucket({c}, {m})"


def _register_functions(session: Session) -> None:
    if session.get_bind().dialect.name == "sqlite":
        raw = session.connection().connection.dbapi_connection
        raw.create_function("siyu_holdout_bucket", 2, holdout_bucket, deterministic=True)


# -- the batch's working tables (temporary: dropped with the transaction) ---------------------------------
_tmp = MetaData()
_stage = Table("campaign_plan_stage", _tmp,
               Column("member_id", BigInteger, primary_key=True), Column("store_id", Integer),
               Column("staff_id", Integer), Column("ext", String(128)), Column("held_out", Boolean),
               Column("over_quota", Boolean), Column("barred", String(40)),  # a reason the action cannot go
               prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
_offsets = Table("campaign_plan_offsets", _tmp, Column("staff_id", Integer, primary_key=True),
                 Column("n", BigInteger), prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
_placed = Table("campaign_plan_placed", _tmp,
                Column("member_id", BigInteger, primary_key=True), Column("store_id", Integer),
                Column("staff_id", Integer), Column("ext", String(128)), Column("status", String(20)),
                Column("reason", String(40)), Column("chunk", Integer), Column("reserved", Boolean),
                prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
_owners = Table("campaign_plan_owners", _tmp, Column("member_id", BigInteger, primary_key=True),
                Column("staff_id", Integer), prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
_exts = Table("campaign_plan_exts", _tmp, Column("member_id", BigInteger, primary_key=True),
              Column("ext", String(128)), prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
_TABLES = (_owners, _exts, _stage, _offsets, _placed)


def _batch_bounds(session: Session, run: CampaignRun, segment_id: int | None, after: int, size: int) -> int | None:
    """The highest member id of the next batch of the audience after member `after` (None: none left)."""
    if run.member_id is not None:
        return run.member_id if run.member_id > after else None
    if segment_id is not None:
        sm = SegmentMembership
        ids = (select(sm.member_id).where(sm.segment_id == segment_id, sm.member_id > after)
               .order_by(sm.member_id).limit(size).subquery())
    else:
        ids = select(Member.id.label("member_id")).where(Member.id > after).order_by(Member.id).limit(size).subquery()
    return session.scalar(select(func.max(ids.c.member_id)))


def _fill_lookups(session: Session, lo: int, hi: int, addr: Addressing) -> None:
    """Each member's owner and the identity the action sends to in (lo, hi] into keyed temporary tables: one
    pass over the range of relations and of identities, whatever the planner believes of their size (a fresh
    import has no statistics, and a join over ranked relations then turns into a rescan per member)."""
    r = Relation
    ranked = (select(r.member_id, r.staff_id, func.row_number().over(
        partition_by=r.member_id, order_by=(r.added_at.desc(), r.id.desc())).label("rn"))
        .join(Staff, Staff.id == r.staff_id)
        .where(r.status == RelationStatus.active.value, Staff.active, r.member_id > lo, r.member_id <= hi)
        .subquery())
    session.execute(_owners.insert().from_select(["member_id", "staff_id"],
                                                 select(ranked.c.member_id, ranked.c.staff_id).where(ranked.c.rn == 1)))
    i = Identity
    scoped = [i.scope == addr.scope] if addr.scope is not None else []
    session.execute(_exts.insert().from_select(["member_id", "ext"], select(i.member_id, func.min(i.value)).where(
        i.type == addr.identity, *scoped, i.member_id > lo, i.member_id <= hi).group_by(i.member_id)))


def _barred(addr: Addressing, member_id):
    """Why the action cannot go to the member although they have the identity (None: it can)."""
    reasons = []
    if addr.follow_events is not None:  # unfollowed since: Tencent would refuse (43004), so no call is made
        follow, unfollow = addr.follow_events
        e1, e2 = aliased(TimelineEvent), aliased(TimelineEvent)
        later = exists().where(e2.member_id == e1.member_id, e2.type == follow, e2.at > e1.at)
        reasons.append((exists().where(e1.member_id == member_id, e1.type == unfollow, ~later), OA_UNFOLLOWED))
    if addr.grant_template is not None:  # no grant left now: skipped at once (the send consumes one, or skips)
        g = SubscribeGrant
        granted = exists().where(g.member_id == member_id, g.template_id == addr.grant_template, g.remaining > 0)
        reasons.append((~granted, NO_SUBSCRIBE_GRANT))
    return case(*reasons, else_=None) if reasons else literal(None, String)


def _stage_select(run: CampaignRun, campaign: Campaign, lo: int, hi: int, holdout_percent: float,
                  addr: Addressing):
    """Members in (lo, hi] of the audience with store, owner (else a staff member of the home store), WeCom
    contact and whether they are held out."""
    m = Member
    home = (select(Staff.id).where(Staff.store_id == m.store_id, Staff.active)
            .order_by(Staff.id).limit(1).scalar_subquery())
    held = (_Bucket(literal(campaign.id), m.id) < int(round(holdout_percent * BUCKETS / 100))
            if holdout_percent else literal(False))
    base = m.__table__
    if campaign.segment_id is not None:  # a join on the segment's key (an IN became a range scan per member)
        sm = SegmentMembership
        base = base.join(sm, and_(sm.segment_id == campaign.segment_id, sm.member_id == m.id))
    base = base.outerjoin(_owners, _owners.c.member_id == m.id).outerjoin(_exts, _exts.c.member_id == m.id)
    q = (select(m.id, m.store_id, func.coalesce(_owners.c.staff_id, home), _exts.c.ext, held, literal(False),
                _barred(addr, m.id))
         .select_from(base).where(m.id > lo, m.id <= hi, m.merged_into_id.is_(None)))
    if run.member_id is not None:
        q = q.where(m.id == run.member_id)
    return q


def reservation_month(campaign: Campaign, settings, now: datetime) -> str:
    """The natural month whose quota a send planned `now` reserves: the month of its due time, which is now or,
    inside quiet hours, when they end (a run planned at 21:30 on 31 March goes at 09:00 on 1 April)."""
    pol = contact.policy_for(campaign.spec.get("policy"), settings)
    return contact.month_of(contact.quiet_until(pol, now) or now, pol.tz)


def _reserve_quota(session: Session, month: str, quota: int, now: datetime) -> None:
    """Take one mass message of `month` for each sendable staged member; those at their quota are marked."""
    q, sg = MassQuota, _stage
    sendable = select(sg.c.member_id).where(sg.c.ext.is_not(None), sg.c.staff_id.is_not(None), ~sg.c.held_out,
                                            sg.c.barred.is_(None))
    session.execute(_insert(session, MassQuota.__table__).from_select(
        ["member_id", "month", "quota", "used"],
        select(sg.c.member_id, literal(month), literal(quota), literal(0))
        .where(sg.c.member_id.in_(sendable)).order_by(sg.c.member_id))
        .on_conflict_do_nothing(index_elements=["member_id", "month"]))
    mine = and_(q.month == month, q.member_id.in_(sendable))
    if session.get_bind().dialect.name == "postgresql":  # lock in member order: racing planners never deadlock
        session.execute(select(func.count()).select_from(
            select(q.member_id).where(mine).order_by(q.member_id).with_for_update().subquery()))
    # A changed setting applies from now on, never below what is already reserved (the CHECK).
    session.execute(update(sg).where(sg.c.member_id.in_(select(q.member_id).where(mine, q.used >= quota)))
                    .values(over_quota=True))
    session.execute(update(q).where(mine, q.used < quota).values(used=q.used + 1, quota=quota))


UNOWNED = 0  # the offsets' key of members sent to without an owning staff member (OA, MP messages)


def _owner(staff_id):
    """The staff member, or UNOWNED; a constant in the SQL (PostgreSQL must see GROUP BY's expression as the same)."""
    return func.coalesce(staff_id, literal_column(str(UNOWNED)))


def _offsets_now(session: Session, run_id: int) -> dict[int, int]:
    st = CampaignStep
    return dict(session.execute(select(_owner(st.staff_id), func.count())
                                .where(st.run_id == run_id, st.send_id.is_not(None))
                                .group_by(_owner(st.staff_id))).all())


def _place(session: Session, offsets: dict[int, int], chunk: int, addr: Addressing) -> None:
    """Each staged member's ledger status and reason, and for the sendable the chunk of their staff member."""
    sg, off = _stage, _offsets
    if offsets:
        session.execute(off.insert(), [{"staff_id": k, "n": v} for k, v in offsets.items()])
    needs = [sg.c.ext.is_not(None), ~sg.c.held_out, ~sg.c.over_quota, sg.c.barred.is_(None)]
    reasons = [(sg.c.ext.is_(None), addr.missing)]
    if addr.staff_required:
        needs.append(sg.c.staff_id.is_not(None))
        reasons.append((sg.c.staff_id.is_(None), NO_STAFF))
    sendable = and_(*needs)
    status = case((sendable, StepStatus.planned.value), else_=StepStatus.skipped.value)
    # Who could not be reached is skipped for that reason first: the holdout is drawn among the reachable only,
    # so its goal rate compares like with like (the quota is not reserved for held-out members: it comes after).
    reason = case(*reasons, (sg.c.barred.is_not(None), sg.c.barred), (sg.c.held_out, HOLDOUT),
                  (sg.c.over_quota, contact.MONTHLY_QUOTA), else_=None)
    owner = _owner(sg.c.staff_id)
    # The n-th chunk of each staff member's sendable customers, in member order: one add_msg_template each.
    position = (func.coalesce(off.c.n, 0)
                + func.row_number().over(partition_by=(owner, sendable), order_by=sg.c.member_id) - 1)
    rows = (select(sg.c.member_id, sg.c.store_id, sg.c.staff_id, sg.c.ext, status, reason,
                   case((sendable, cast(position // chunk, Integer)), else_=None),
                   and_(sendable, literal(addr.mass_quota)))
            .select_from(sg.outerjoin(off, off.c.staff_id == owner)))
    session.execute(_placed.insert().from_select(
        ["member_id", "store_id", "staff_id", "ext", "status", "reason", "chunk", "reserved"], rows))


def _write(session: Session, run: CampaignRun, step: str, month: str, now: datetime, addr: Addressing) -> None:
    p, send = _placed, CampaignSend
    groups = select(p.c.staff_id, p.c.chunk).where(p.c.chunk.is_not(None)).distinct().subquery()
    send_cols = ["run_id", "staff_id", "chunk", "status", "due_at", "attempt"]
    sends = select(literal(run.id), groups.c.staff_id, groups.c.chunk, literal(SendStatus.planned.value),
                   literal(now, CampaignSend.due_at.type), literal(0))
    table = send.__table__
    session.execute(_insert(session, table).from_select(send_cols, sends.where(groups.c.staff_id.is_not(None)))
                    .on_conflict_do_nothing(index_elements=["run_id", "staff_id", "chunk"]))
    # Each row points at its send through the send's unique key (an index probe, no pass over the run's sends).
    owned = aliased(CampaignSend)
    source = p.outerjoin(owned, and_(owned.run_id == run.id, owned.staff_id == p.c.staff_id, owned.chunk == p.c.chunk))
    send_id = owned.id
    if not addr.staff_required:  # members without an owner: the unowned sends, under their partial unique index
        session.execute(_insert(session, table).from_select(send_cols, sends.where(groups.c.staff_id.is_(None)))
                        .on_conflict_do_nothing(index_elements=["run_id", "chunk"],
                                                index_where=CampaignSend.staff_id.is_(None)))
        unowned = aliased(CampaignSend)
        source = source.outerjoin(unowned, and_(p.c.staff_id.is_(None), unowned.run_id == run.id,
                                                unowned.staff_id.is_(None), unowned.chunk == p.c.chunk))
        send_id = func.coalesce(owned.id, unowned.id)
    key = literal(f"run:{run.id}:member:") + cast(p.c.member_id, String) + literal(f":{step}")
    joined = (select(key, literal(run.id), literal(run.campaign_id), p.c.member_id, literal(step), p.c.status,
                     p.c.reason, p.c.staff_id, p.c.store_id, p.c.ext, send_id,
                     case((p.c.reserved, literal(month)), else_=None), literal(now, CampaignStep.updated_at.type))
              .select_from(source).where(true()))
    cols = ["key", "run_id", "campaign_id", "member_id", "step", "status", "reason", "staff_id", "store_id",
            "external_userid", "send_id", "quota_month", "updated_at"]
    session.execute(_insert(session, CampaignStep.__table__).from_select(cols, joined)
                    .on_conflict_do_nothing(index_elements=["key"]))


def plan_batch(session: Session, *, run_id: int, now: datetime, chunk: int, batch: int,
               cache: dict) -> int | None:
    """Plan the run's next batch of members in this transaction: rows written, or None when the run is
    planned (now or before) or no longer sending. `cache` carries the staff offsets between batches."""
    run_ = CampaignRun
    cursor = session.execute(update(run_).where(run_.id == run_id, run_.planned_at.is_(None),
                                                run_.status == RunStatus.sending.value)
                             .values(planned_through=func.coalesce(run_.planned_through, 0))
                             .returning(run_.planned_through)).scalar()  # the run's row is the planners' lock
    if cursor is None:
        return None
    run = session.get(CampaignRun, run_id, populate_existing=True)
    campaign = session.get(Campaign, run.campaign_id)
    hi = _batch_bounds(session, run, campaign.segment_id, cursor, batch)
    if hi is None:
        run.planned_at = now
        if session.get_bind().dialect.name == "postgresql":
            # The ledger went from nothing to the whole audience: without fresh statistics the claims'
            # statements would be planned for an empty table.
            session.execute(text("ANALYZE campaign_steps"))
        log.info("campaign run %s: ledger written", run_id)
        return None
    if cache.get("cursor") != cursor:  # first batch of this planner, or another planner went in between
        cache.update(cursor=cursor, offsets=_offsets_now(session, run_id) if cursor else {})
    addr = addressing_of(campaign.spec.get("action"))
    if addr.per_member:  # Tencent takes one member per call (OA template, MP subscribe messages)
        chunk = 1
    _register_functions(session)
    flush_behind(session)  # its statements go through the connection, not the session
    conn = session.connection()
    for t in _TABLES:
        t.create(conn)
    try:
        holdout = float((campaign.spec.get("holdout") or {}).get("percent") or 0)
        if run.member_id is not None:
            _fill_lookups(session, run.member_id - 1, run.member_id, addr)
        else:
            _fill_lookups(session, cursor, hi, addr)
        if conn.dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {_owners.name}, {_exts.name}"))
        session.execute(_stage.insert().from_select([c.name for c in _stage.c],
                                                    _stage_select(run, campaign, cursor, hi, holdout, addr)))
        if conn.dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {_stage.name}"))
        settings = get_settings()
        month = reservation_month(campaign, settings, now)
        if addr.mass_quota:  # only WeCom's mass messages count against its per-customer monthly quota
            _reserve_quota(session, month, settings.mass_message_monthly_quota, now)
        _place(session, cache["offsets"], chunk, addr)
        if conn.dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {_placed.name}"))
        written, placed = 0, _placed.c.chunk.is_not(None)
        owner = _owner(_placed.c.staff_id)
        for staff_id, n, sendable in session.execute(select(owner, func.count(), placed).group_by(owner, placed)):
            written += n
            if sendable:
                cache["offsets"][staff_id] = cache["offsets"].get(staff_id, 0) + n
        _write(session, run, campaign.action_type, month, now, addr)  # a batch is one transaction: its rows are new
    finally:
        if conn.dialect.name != "postgresql":
            for t in reversed(_TABLES):
                t.drop(conn)
    run.planned_through = hi
    cache["cursor"] = hi
    return written


def plan(run_id: int, *, now: datetime, chunk: int | None = None, batch: int | None = None,
         deadline: float | None = None) -> int:
    """Write the run's ledger and send rows, batch by batch, each batch its own transaction, until planned (or
    past `deadline`, a time.monotonic(): a later call goes on); the number of ledger rows this call wrote."""
    written, cache = 0, {}
    while deadline is None or time.monotonic() < deadline:
        with session_scope() as s:
            n = plan_batch(s, run_id=run_id, now=now, chunk=chunk or CHUNK, batch=batch or BATCH, cache=cache)
        if n is None:
            break
        written += n
    return written
