"""Completing staff tasks (a card click, the API or the workbench), updating the card, and the overdue reminder.

Completion is one conditional UPDATE (`status = 'open'`): a click delivered twice, or a click and a tap on
the workbench, complete the task once. `task.completed` goes to the timeline of each of the task's customers
(the members it asked the staff member to contact), under a key per task and member.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.clients import wecom_client
from bot.errors import BusyError, RateLimitedError, TokenError, TransportError, WeChatAPIError
from campaigns import clock
from campaigns.models import CampaignStep, StepStatus
from campaigns.tasks import card
from campaigns.tasks.action import customers_of
from campaigns.tasks.models import StaffTask, TaskStatus
from config.database import session_scope
from config.queue import enqueue
from membership import timeline
from membership.models import Staff

log = logging.getLogger(__name__)
HANDED = (StepStatus.submitted.value, StepStatus.confirmed.value)  # customers the staff member was given
PASSING = (RateLimitedError, BusyError, TokenError, TransportError)  # a card update worth trying again


def status_of(task: StaffTask, now: datetime) -> str:
    """CONTRACT §7: open, done, or overdue (open and past due)."""
    if task.status == TaskStatus.open.value and task.due_at < now:
        return "overdue"
    return task.status


def complete(session: Session, task_pk: int, *, via: str, response_code: str | None = None,
             now: datetime | None = None) -> bool:
    """Mark the task done once (False: it was done already); its customers confirmed, their timelines told,
    and the card updated to 已完成 after the commit (with the click's response_code, else the send's)."""
    now = now or clock.now()
    t = StaffTask
    done = session.execute(update(t).where(t.id == task_pk, t.status == TaskStatus.open.value)
                           .values(status=TaskStatus.done.value, done_at=now, done_via=via)
                           .returning(t.id)).scalar()
    if done is None:
        return False
    task = session.get(StaffTask, task_pk, populate_existing=True)
    st = CampaignStep
    mine = (st.run_id == task.run_id) & (st.staff_id == task.staff_id)
    session.execute(update(st).where(mine, st.status == StepStatus.submitted.value)
                    .values(status=StepStatus.confirmed.value, confirmed_at=now, updated_at=now))
    userid = session.scalar(select(Staff.userid).where(Staff.id == task.staff_id))
    for member_id, _ in session.execute(customers_of(session, task, HANDED)):
        timeline.record_event(session, member_id, "task.completed",
                              {"campaign_id": task.campaign_id, "task_id": task.id, "staff": userid, "via": via},
                              at=now, dedupe_key=f"task:{task.id}:member:{member_id}:completed")
    enqueue(update_card, task.id, response_code, session=session, job_id=f"task-card-{task.id}")
    log.info("task %s done (%s)", task.id, via)
    return True


def on_card_click(session: Session, clicked: dict) -> None:
    """template_card_event (bound in siyu.wiring): 完成 on one of our cards, by its staff member, completes it."""
    task = session.scalar(select(StaffTask).where(StaffTask.task_id == str(clicked.get("TaskId") or "")))
    if task is None:
        return  # another app's or campaign's card: the inbox keeps it
    userid = session.scalar(select(Staff.userid).where(Staff.id == task.staff_id))
    if str(clicked.get("FromUserName") or "").lower() != userid.lower():  # WeCom's userids ignore case
        log.warning("task %s: a click by someone not its staff member, ignored", task.id)
        return
    if clicked.get("EventKey") != card.DONE_KEY:
        return  # 稍后: nothing changes, the card stays clickable
    complete(session, task.id, via="card", response_code=clicked.get("ResponseCode") or None)


def update_card(task_pk: int, response_code: str | None) -> str:
    """Grey the card's buttons out as 已完成 (update_template_card): each response_code is used once."""
    with session_scope() as s:
        task = s.get(StaffTask, task_pk)
        if task is None or task.card_updated_at is not None:
            return "nothing to do"
        code = response_code
        own = task.response_code
        if code is None and own:  # done in Siyu, not on the card: spend the send's own code, once
            t = StaffTask
            taken = s.execute(update(t).where(t.id == task_pk, t.response_code == own)
                              .values(response_code=None).returning(t.id)).scalar()
            code = own if taken else None
        userid = s.scalar(select(Staff.userid).where(Staff.id == task.staff_id))
    if not code:
        return "no code"
    try:
        wecom_client().update_template_card(card.done_update(userid, code))
    except PASSING:  # nothing settled: the queue tries again, with the send's code given back if it was that
        if response_code is None:
            with session_scope() as s:
                s.execute(update(StaffTask).where(StaffTask.id == task_pk, StaffTask.response_code.is_(None))
                          .values(response_code=code))
        raise
    except WeChatAPIError as exc:  # expired (72 h) or used: the task is done all the same
        with session_scope() as s:
            s.execute(update(StaffTask).where(StaffTask.id == task_pk).values(error=f"update card: {exc}"))
        log.warning("task %s: card not updated: %s", task_pk, exc)
        return "refused"
    with session_scope() as s:
        s.execute(update(StaffTask).where(StaffTask.id == task_pk).values(card_updated_at=clock.now()))
    return "updated"


# -- overdue ----------------------------------------------------------------------------------------------
def overdue_unreminded(session: Session, now: datetime) -> list[int]:
    """Open tasks past due whose one reminder has not gone out."""
    t = StaffTask
    return list(session.scalars(select(t.id).where(t.status == TaskStatus.open.value, t.due_at < now,
                                                   t.reminded_at.is_(None), t.card_sent_at.is_not(None))
                                .order_by(t.id).limit(10_000)))


def remind(task_pk: int) -> str:
    """The one overdue reminder: claimed by stamping `reminded_at` first, so two workers never both send it."""
    now = clock.now()
    with session_scope() as s:
        t = StaffTask
        took = s.execute(update(t).where(t.id == task_pk, t.status == TaskStatus.open.value, t.due_at < now,
                                         t.reminded_at.is_(None)).values(reminded_at=now).returning(t.id)).scalar()
        if took is None:
            return "not due"
        task = s.get(StaffTask, task_pk)
        userid = s.scalar(select(Staff.userid).where(Staff.id == task.staff_id))
        left = s.scalar(select(func.count()).select_from(customers_of(s, task, HANDED).subquery()))
        body = card.reminder_message(userid=userid, title=task.title, customers=left)
    try:
        wecom_client().send_message(body)
    except WeChatAPIError as exc:  # counted all the same: reminded once, never twice
        log.warning("task %s: reminder refused: %s", task_pk, exc)
        return "refused"
    log.info("task %s: overdue, staff reminded", task_pk)
    return "reminded"


def remind_tick() -> dict:
    """Queue the reminder of every overdue task not reminded yet."""
    with session_scope() as s:
        due = overdue_unreminded(s, clock.now())
    for task_pk in due:
        enqueue(remind, task_pk, queue="low", retries=0, job_id=f"task-remind-{task_pk}")
    return {"reminders": len(due)}
