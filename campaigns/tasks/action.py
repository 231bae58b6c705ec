"""The `wecom_staff_task` action: per claimed send, the run's task of its staff member (made once) and its card.

The task row is written before the card goes out, under a unique (run, staff member): a redelivered job, a
reclaimed chunk or a second launch finds it. A staff member with more than one chunk gets one task and one
card (later chunks only join their customers to the task). The card carries the task's WeCom `task_id`,
which WeCom keeps unique per app: an interrupted call is settled by sending again — errcode 42014 says the
first one went out — so `reconcile` is `call`.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from bot.clients import wecom_client
from bot.errors import BusyError, RateLimitedError, TokenError, TransportError, WeChatAPIError
from campaigns import clock, outcomes
from campaigns.claims import Work
from campaigns.ledger import _insert
from campaigns.models import CampaignRun, CampaignSend, CampaignStep, StepStatus
from campaigns.tasks import card
from campaigns.tasks.models import StaffTask
from config.database import session_scope
from membership import timeline
from membership.models import Member, Staff

log = logging.getLogger(__name__)

PASSING = (RateLimitedError, BusyError, TokenError)
TASK_ID_TAKEN = 42014  # "taskid has existed or empty or exceed max len": ours is never empty or long
LISTED = (StepStatus.planned.value, StepStatus.claimed.value, StepStatus.submitted.value,
          StepStatus.confirmed.value, StepStatus.unknown.value)


def ensure_task(session, send_id: int, action: dict) -> StaffTask:
    """The task of the send's run and staff member, written now if it is not yet (due in `due_in_hours`)."""
    send = session.get(CampaignSend, send_id)
    run = session.get(CampaignRun, send.run_id)
    staff = session.get(Staff, send.staff_id)
    now = clock.now()
    session.execute(_insert(session, StaffTask.__table__).values(
        campaign_id=run.campaign_id, run_id=run.id, staff_id=staff.id, store_id=staff.store_id,
        title=action["title"], description=action.get("description") or "", task_id=card.new_task_id(run.id, staff.id),
        status="open", due_at=now + timedelta(hours=int(action["due_in_hours"])), created_at=now)
        .on_conflict_do_nothing(index_elements=["run_id", "staff_id"]))
    return session.scalar(select(StaffTask).where(StaffTask.run_id == run.id, StaffTask.staff_id == staff.id))


def customers_of(session, task: StaffTask, statuses=LISTED):
    """The task's ledger rows: the run's customers this staff member owns (skipped ones left out)."""
    st = CampaignStep
    return (select(st.member_id, Member.name).join(Member, Member.id == st.member_id)
            .where(st.run_id == task.run_id, st.staff_id == task.staff_id, st.status.in_(statuses))
            .order_by(st.member_id))


def _body(session, task: StaffTask, userid: str) -> dict:
    q = customers_of(session, task).subquery()
    count = session.scalar(select(func.count()).select_from(q))
    names = list(session.scalars(select(q.c.name).limit(card.NAMES_SHOWN)))
    return card.card_message(userid=userid, task_id=task.task_id, title=task.title, description=task.description,
                             due_at=task.due_at, customers=count, names=names)


def call(work: Work) -> str:
    """Write the task (once), send its card (once), and mark the chunk's customers as handed to the staff member."""
    with session_scope() as s:
        task = ensure_task(s, work.send_id, work.action)
        task_pk, sent = task.id, task.card_sent_at is not None
        body = None if sent else _body(s, task, work.userid)
    answer: dict = {}
    if body is not None:
        try:
            answer = wecom_client().send_message(body)
        except TransportError as exc:
            with session_scope() as s:
                outcomes.unknown(s, send_id=work.send_id, attempt=work.attempt, error=str(exc), now=clock.now())
            log.warning("task %s: card outcome unknown, sent again (task_id decides): %s", task_pk, exc)
            return "unknown"
        except WeChatAPIError as exc:
            if exc.errcode != TASK_ID_TAKEN:
                with session_scope() as s:
                    s.execute(update(StaffTask).where(StaffTask.id == task_pk).values(error=str(exc)))
                    outcomes.refused(s, send_id=work.send_id, attempt=work.attempt, error=str(exc),
                                     retry=isinstance(exc, PASSING), now=clock.now())
                log.warning("task %s: card refused by WeCom: %s", task_pk, exc)
                return "refused"
            log.info("task %s: WeCom has its task_id already: the card went out before", task_pk)
        except Exception as exc:  # not WeCom's answer: whether the card went out is unknown
            with session_scope() as s:
                outcomes.unknown(s, send_id=work.send_id, attempt=work.attempt,
                                 error=f"{type(exc).__name__}: {exc}", now=clock.now())
            raise
    return _record(work, task_pk, answer)


def _record(work: Work, task_pk: int, answer: dict) -> str:
    now = clock.now()
    with session_scope() as s:
        t = StaffTask
        s.execute(update(t).where(t.id == task_pk, t.card_sent_at.is_(None))
                  .values(card_sent_at=now, card_msgid=answer.get("msgid") or None,
                          response_code=answer.get("response_code") or None, error=None))
        if not outcomes.submitted(s, send_id=work.send_id, attempt=work.attempt, msgid=None, fail_list=[], now=now):
            return "lost claim"
        task = s.get(StaffTask, task_pk)
        st = CampaignStep
        for member_id, key in s.execute(select(st.member_id, st.key).where(
                st.send_id == work.send_id, st.status == StepStatus.submitted.value)):
            timeline.record_event(s, member_id, "task.assigned",
                                  {"campaign_id": task.campaign_id, "task_id": task.id, "staff": work.userid,
                                   "title": task.title}, at=now, dedupe_key=f"{key}:assigned")
    return "submitted"


reconcile = call  # the card's task_id is unique at WeCom: sending again settles an interrupted call


def poll(send_id: int) -> str:
    """Nothing to poll: a task's send is settled when its card went out; clicks arrive through the webhook."""
    return "done"
