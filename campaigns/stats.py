"""Campaign results from the ledger: targeted, skipped by reason, sent, failed, confirmed, delivered, converted;
in total, per store and per staff member (CONTRACT §7)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from campaigns.channels import channel_of
from campaigns.models import Campaign, CampaignStep, Result, StepStatus
from campaigns.tasks.stats import task_counts
from membership.models import Staff, Store, TimelineEvent


def _empty() -> dict:
    return {"targeted": 0, "skipped": {}, "sent": 0, "failed": 0, "unknown": 0, "confirmed": 0, "delivered": 0,
            "converted": 0}


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


def campaign_stats(session: Session, campaign: Campaign) -> dict:
    """The campaign's stats with `per_store` (by store code) and `per_staff` (by userid)."""
    st = CampaignStep
    stores = dict(session.execute(select(Store.id, Store.code)).all())
    staff = dict(session.execute(select(Staff.id, Staff.userid)).all())
    total, per_store, per_staff = _empty(), {}, {}
    rows = session.execute(select(st.store_id, st.staff_id, st.status, st.reason, st.result, func.count(),
                                  func.count(st.submitted_at), func.count(st.confirmed_at))
                           .where(st.campaign_id == campaign.id)
                           .group_by(st.store_id, st.staff_id, st.status, st.reason, st.result))
    for store_id, staff_id, status, reason, result, n, sent, confirmed in rows:
        for bucket in (total, per_store.setdefault(stores.get(store_id, "-"), _empty()),
                       per_staff.setdefault(staff.get(staff_id, "-"), _empty())):
            _add(bucket, status, reason, result, n, sent, confirmed)
    goal = campaign.spec.get("goal")
    if goal:
        ev = TimelineEvent
        window = timedelta(days=int(goal.get("within_days", 7)))
        # A member converts when the goal event follows their delivered message within the window (compared in
        # Python: SQLite has no interval arithmetic on stored times). The touch is when the staff member sent it,
        # or, with no staff member to confirm (OA, MP messages), when Tencent took it.
        touch = func.coalesce(st.confirmed_at, st.submitted_at)
        q = (select(st.id, st.store_id, st.staff_id, touch, ev.at)
             .join(ev, and_(ev.member_id == st.member_id, ev.type == goal["event"], ev.at >= touch))
             .where(st.campaign_id == campaign.id, st.result == Result.delivered.value))
        seen: set[int] = set()
        for step_id, store_id, staff_id, touched, at in session.execute(q):
            if step_id in seen or at > touched + window:
                continue
            seen.add(step_id)
            total["converted"] += 1
            per_store[stores.get(store_id, "-")]["converted"] += 1
            per_staff[staff.get(staff_id, "-")]["converted"] += 1
    if channel_of(campaign.spec.get("action")) == "wecom_staff_task":  # confirmed counts the customers of tasks done
        task_counts(session, campaign.id, total, per_store, per_staff, stores, staff, _empty)
    return {**total, "per_store": per_store, "per_staff": per_staff}
