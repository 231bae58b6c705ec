"""Task completion in a `wecom_staff_task` campaign's stats: open / done / overdue tasks in total, per store
(the staff member's) and per staff member; the ledger's `confirmed` counts the customers of the tasks done."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns import clock
from campaigns.tasks.models import StaffTask, TaskStatus


def _none() -> dict:
    return {"open": 0, "done": 0, "overdue": 0}


def task_counts(session: Session, campaign_id: int, total: dict, per_store: dict, per_staff: dict,
                stores: dict[int, str], staff: dict[int, str], empty: Callable[[], dict]) -> None:
    """Add `tasks` to every bucket of the campaign's stats (a bucket missing so far starts from `empty()`)."""
    t = StaffTask
    past = t.due_at < clock.now()
    rows = session.execute(select(t.store_id, t.staff_id, t.status, past, func.count())
                           .where(t.campaign_id == campaign_id).group_by(t.store_id, t.staff_id, t.status, past))
    for bucket in (total, *per_store.values(), *per_staff.values()):
        bucket["tasks"] = _none()
    for store_id, staff_id, status, overdue, n in rows:
        word = "overdue" if status == TaskStatus.open.value and overdue else status
        for bucket in (total, per_store.setdefault(stores.get(store_id, "-"), {**empty(), "tasks": _none()}),
                       per_staff.setdefault(staff.get(staff_id, "-"), {**empty(), "tasks": _none()})):
            bucket["tasks"][word] += n
