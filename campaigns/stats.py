"""Campaign results from the ledger: targeted, skipped by reason, sent, failed, confirmed, delivered, converted;
in total, per store and per staff member (CONTRACT §7); and the attribution beside a holdout.

Two queries, each grouped by store and staff member (no query per member, store or staff member):
- the ledger's counts by status, reason and result;
- the comparison groups and their conversions. `treatment`: the members sent to (their call went to WeCom);
  `holdout`: the members the campaign held out (skipped, reason `holdout`). A member converts when the
  campaign's goal event is on their timeline within `goal.within_days` after their touch: the time their call
  was sent, and for a held-out member the run's planning time (when they would have been sent to).
  `converted` is the treatment's conversions; `lift` is the treatment's rate less the holdout's.
"""
from __future__ import annotations

from sqlalchemy import and_, case, exists, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from campaigns.channels import channel_of
from campaigns.ledger import HOLDOUT
from campaigns.models import Campaign, CampaignRun, CampaignStep, Result, StepStatus
from campaigns.tasks.stats import task_counts
from config.types import UTCDateTime
from membership.models import Staff, Store, TimelineEvent

TREATMENT = "treatment"


class _PlusDays(FunctionElement):
    type = UTCDateTime()
    inherit_cache = False  # `days` is rendered into the SQL: statements with it are not cached

    def __init__(self, at, days: int):
        self.days = int(days)
        super().__init__(at)


@compiles(_PlusDays, "postgresql")
def _plus_days_pg(element, compiler, **kw):
    return f"({compiler.process(element.clauses, **kw)} + make_interval(days => {element.days}))"


@compiles(_PlusDays)
def _plus_days_sqlite(element, compiler, **kw):  # SQLite keeps times as 'YYYY-MM-DD HH:MM:SS.ffffff' text
    return f"strftime('%Y-%m-%d %H:%M:%f', {compiler.process(element.clauses, **kw)}, '+{element.days} days')"


def _group() -> dict:
    return {"members": 0, "converted": 0, "rate": 0.0}


def _empty() -> dict:
    return {"targeted": 0, "skipped": {}, "sent": 0, "failed": 0, "unknown": 0, "confirmed": 0, "delivered": 0,
            "converted": 0, TREATMENT: _group(), HOLDOUT: _group(), "lift": None}


def _add(into: dict, status: str, reason: str | None, result: str | None, n: int, sent: int, confirmed: int) -> None:
    into["targeted"] += n
    into["sent"] += sent
    into["confirmed"] += confirmed
    if status == StepStatus.skipped.value:
        into["skipped"][reason or "unknown"] = into["skipped"].get(reason or "unknown", 0) + n
    elif status == StepStatus.failed.value:
        into["failed"] += n
    elif status == StepStatus.unknown.value:  # a call whose outcome Tencent cannot be asked about (not retried)
        into["unknown"] += n
    if result == Result.delivered.value:
        into["delivered"] += n


def _attribution(session: Session, campaign: Campaign):
    """(store_id, staff_id, group, members, converted) for the treatment and the holdout."""
    st, run, ev = CampaignStep, CampaignRun, TimelineEvent
    held = and_(st.status == StepStatus.skipped.value, st.reason == HOLDOUT)
    group = case((held, literal(HOLDOUT)), (st.submitted_at.is_not(None), literal(TREATMENT)), else_=None)
    goal = campaign.spec.get("goal")
    if goal:
        touch = case((held, run.planned_at), else_=st.submitted_at)
        converts = exists().where(ev.member_id == st.member_id, ev.type == goal["event"], ev.at >= touch,
                                  ev.at <= _PlusDays(touch, int(goal.get("within_days", 7))))
        converted = func.sum(case((converts, 1), else_=0))
    else:
        converted = literal(0)
    return session.execute(
        select(st.store_id, st.staff_id, group.label("grp"), func.count(), converted)
        .join(run, run.id == st.run_id)
        .where(st.campaign_id == campaign.id, group.is_not(None))
        .group_by(st.store_id, st.staff_id, group))


def _rates(into: dict, has_goal: bool) -> None:
    for name in (TREATMENT, HOLDOUT):
        g = into[name]
        g["rate"] = round(g["converted"] / g["members"], 4) if g["members"] else 0.0
    into["converted"] = into[TREATMENT]["converted"]
    if has_goal and into[TREATMENT]["members"] and into[HOLDOUT]["members"]:
        into["lift"] = round(into[TREATMENT]["rate"] - into[HOLDOUT]["rate"], 4)


def campaign_stats(session: Session, campaign: Campaign) -> dict:
    """The campaign's stats with `per_store` (by store code) and `per_staff` (by userid)."""
    st = CampaignStep
    stores = dict(session.execute(select(Store.id, Store.code)).all())
    staff = dict(session.execute(select(Staff.id, Staff.userid)).all())
    total, per_store, per_staff = _empty(), {}, {}

    def buckets(store_id, staff_id):
        return (total, per_store.setdefault(stores.get(store_id, "-"), _empty()),
                per_staff.setdefault(staff.get(staff_id, "-"), _empty()))

    rows = session.execute(select(st.store_id, st.staff_id, st.status, st.reason, st.result, func.count(),
                                  func.count(st.submitted_at), func.count(st.confirmed_at))
                           .where(st.campaign_id == campaign.id)
                           .group_by(st.store_id, st.staff_id, st.status, st.reason, st.result))
    for store_id, staff_id, status, reason, result, n, sent, confirmed in rows:
        for bucket in buckets(store_id, staff_id):
            _add(bucket, status, reason, result, n, sent, confirmed)
    for store_id, staff_id, grp, members, converted in _attribution(session, campaign):
        for bucket in buckets(store_id, staff_id):
            bucket[grp]["members"] += members
            bucket[grp]["converted"] += int(converted or 0)
    has_goal = bool(campaign.spec.get("goal"))
    for bucket in (total, *per_store.values(), *per_staff.values()):
        _rates(bucket, has_goal)
    if channel_of(campaign.spec.get("action")) == "wecom_staff_task":  # confirmed counts the customers of tasks done
        task_counts(session, campaign.id, total, per_store, per_staff, stores, staff, _empty)
    return {**total, "per_store": per_store, "per_staff": per_staff}
