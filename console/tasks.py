"""任务: staff tasks per staff member and store (open / done / overdue) and the tasks themselves, filtered by
status; for admins, marketers and store managers (a store manager sees their store's), scoped like the API."""
from __future__ import annotations

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from campaigns import clock
from campaigns.tasks import views
from config.database import request_session
from config.errors import InvalidInput, NotFound
from config.pagination import decode_cursor, page_of
from console.web import console_router, is_htmx, render, viewer_of
from membership.access import Principal
from membership.models import Role

router = console_router()
managers = viewer_of(Role.marketer, Role.store_manager)
PAGE = 30
STATUS_LABELS = {"": "全部", "open": "待完成", "overdue": "已逾期", "done": "已完成"}


@router.get("/tasks")
def tasks_page(request: Request, status: str = "", staff: str = "", cursor: str | None = None,
               session: Session = request_session, who: Principal = Depends(managers)):
    """Counts per staff member and store, then the tasks matching the filters, a page at a time."""
    now = clock.now()
    query = {"status": status.strip(), "staff": staff.strip()}
    errors: dict[str, str] = {}
    rows, next_cursor = [], None
    try:
        found = views.find_tasks(session, who, staff=query["staff"] or None, status=query["status"] or None, now=now,
                                 after_id=decode_cursor(cursor), limit=PAGE + 1)
        page, next_cursor = page_of(found, PAGE, lambda t: t.id)
        rows = views.tasks_out(session, page, now)
    except (InvalidInput, NotFound) as exc:
        errors["staff" if exc.detail.startswith("staff") else "status"] = exc.detail
    if is_htmx(request) and cursor:
        return render(request, "tasks_rows.html", rows=rows, next_cursor=next_cursor, query=query)
    return render(request, "tasks.html", counts=views.counts(session, who, now), rows=rows, next_cursor=next_cursor,
                  query=query, errors=errors, labels=STATUS_LABELS)
