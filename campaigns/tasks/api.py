"""Admin API, tasks slice: `GET /api/v1/tasks?staff=&status=` (CONTRACT §3) and `POST /api/v1/tasks/{id}/done`
(extension), scoped like the rest of the API: admin and marketer all tasks, a store manager their store's, a
staff member their own (any other task is 404)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from campaigns import clock
from campaigns.tasks import service, views
from campaigns.tasks.views import TaskOut, TaskPage
from config.api_errors import ERROR_RESPONSES
from config.database import request_session
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from membership.access import Principal, current_principal

router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=ERROR_RESPONSES)


@router.get("/tasks", response_model=TaskPage)
def list_tasks(staff: str | None = Query(None, max_length=64), status: str | None = Query(None, max_length=10),
               cursor: str | None = None, limit: int = Query(50, ge=1, le=200), session: Session = request_session,
               who: Principal = Depends(current_principal)):
    """Staff tasks the caller may see, by staff member (userid) and status (open, done, overdue); a page at a time."""
    now = clock.now()
    rows = views.find_tasks(session, who, staff=staff, status=status, now=now, after_id=decode_cursor(cursor),
                            limit=limit + 1)
    page, next_cursor = page_of(rows, limit, lambda t: t.id)
    return TaskPage(items=views.tasks_out(session, page, now), next_cursor=next_cursor)


@router.post("/tasks/{task_id}/done", response_model=TaskOut)
def mark_done(task_id: DbId, session: Session = request_session, who: Principal = Depends(current_principal)):
    """Mark a task done (again: nothing changes); its card is updated to 已完成."""
    task = views.visible_task(session, who, task_id)
    service.complete(session, task.id, via="api")
    session.expire_all()
    return views.tasks_out(session, [views.visible_task(session, who, task_id)], clock.now())[0]
