"""Staff tasks as the API and the console show them, scoped like the API: admin and marketer see every task,
a store manager their store's, a staff member their own."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from campaigns.tasks.action import customers_of
from campaigns.tasks.models import StaffTask, TaskStatus
from campaigns.tasks.service import HANDED, status_of
from config.errors import InvalidInput, NotFound
from membership.access import Principal
from membership.models import Role, Staff, Store

STATUSES = ("open", "done", "overdue")
CUSTOMERS_LISTED = 100  # per task in a listing; `customer_count` has them all


class TaskCustomer(BaseModel):
    member_id: int
    name: str | None


class TaskOut(BaseModel):
    id: int
    campaign_id: int
    title: str
    description: str
    staff: str
    store: str | None
    status: str  # open, done, overdue
    due_at: datetime
    created_at: datetime
    done_at: datetime | None
    done_via: str | None
    customer_count: int
    customers: list[TaskCustomer]


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None


def scoped(principal: Principal) -> Select:
    """The tasks the caller may see."""
    q = select(StaffTask)
    if principal.allows(Role.marketer):
        return q
    if principal.role is Role.store_manager:
        return q.where(StaffTask.store_id == principal.store_id)
    return q.where(StaffTask.staff_id == (principal.staff_id or -1))


def with_status(q: Select, status: str | None, now: datetime) -> Select:
    """Narrowed to one displayed status (an overdue task is not listed as open)."""
    t = StaffTask
    if status is None:
        return q
    if status not in STATUSES:
        raise InvalidInput(f"status: one of {', '.join(STATUSES)}, got {status!r}")
    if status == "done":
        return q.where(t.status == TaskStatus.done.value)
    past = t.due_at < now
    return q.where(t.status == TaskStatus.open.value, past if status == "overdue" else ~past)


def find_tasks(session: Session, principal: Principal, *, staff: str | None, status: str | None, now: datetime,
               after_id: int | None, limit: int) -> list[StaffTask]:
    """The caller's tasks matching the filters, in id order after `after_id`."""
    q = with_status(scoped(principal), status, now)
    if staff:
        staff_id = session.scalar(select(Staff.id).where(Staff.userid == staff))
        if staff_id is None:
            raise NotFound(f"staff {staff!r} not found")
        q = q.where(StaffTask.staff_id == staff_id)
    if after_id is not None:
        q = q.where(StaffTask.id > after_id)
    return list(session.scalars(q.order_by(StaffTask.id).limit(limit)))


def visible_task(session: Session, principal: Principal, task_pk: int) -> StaffTask:
    """The task if the caller may see it; NotFound otherwise (the same answer as no task)."""
    task = session.scalar(scoped(principal).where(StaffTask.id == task_pk))
    if task is None:
        raise NotFound(f"task {task_pk} not found")
    return task


def tasks_out(session: Session, tasks: list[StaffTask], now: datetime) -> list[TaskOut]:
    """The API's shape of these tasks, with their customers."""
    staff = dict(session.execute(select(Staff.id, Staff.userid).where(Staff.id.in_({t.staff_id for t in tasks}))).all())
    stores = dict(session.execute(select(Store.id, Store.code)).all())
    out = []
    for t in tasks:
        rows = session.execute(customers_of(session, t, HANDED).limit(CUSTOMERS_LISTED)).all()
        count = session.scalar(select(func.count()).select_from(customers_of(session, t, HANDED).subquery()))
        out.append(TaskOut(id=t.id, campaign_id=t.campaign_id, title=t.title, description=t.description,
                           staff=staff.get(t.staff_id, "-"), store=stores.get(t.store_id), status=status_of(t, now),
                           due_at=t.due_at, created_at=t.created_at, done_at=t.done_at, done_via=t.done_via,
                           customer_count=count, customers=[TaskCustomer(member_id=m, name=n) for m, n in rows]))
    return out


def counts(session: Session, principal: Principal, now: datetime) -> list[dict]:
    """Open, done and overdue per staff member (with their store), for the caller's tasks."""
    t = scoped(principal).subquery()
    overdue = and_(t.c.status == TaskStatus.open.value, t.c.due_at < now)
    rows = session.execute(
        select(Staff.userid, Staff.name, Store.code, Store.name,
               func.count().filter(and_(t.c.status == TaskStatus.open.value, t.c.due_at >= now)),
               func.count().filter(t.c.status == TaskStatus.done.value), func.count().filter(overdue))
        .join(Staff, Staff.id == t.c.staff_id).outerjoin(Store, Store.id == t.c.store_id)
        .group_by(Staff.userid, Staff.name, Store.code, Store.name).order_by(Store.code, Staff.userid))
    return [{"userid": u, "name": n, "store": code, "store_name": sname, "open": o, "done": d, "overdue": od}
            for u, n, code, sname, o, d, od in rows]


