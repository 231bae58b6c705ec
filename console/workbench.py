"""The staff workbench (/console/workbench): a phone page in WeCom's in-app browser, signed in through WeCom OAuth.

snsapi_base: WeCom's authorize page hands back a single-use code, `auth/getuserinfo` names the staff member,
and the browser gets a session cookie; no token ever travels in a URL. On top: the staff member's open and
overdue tasks with the customers to contact, each done with one tap (htmx, the console's CSRF token).
"""
from __future__ import annotations

import secrets

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from bot.clients import wecom_client
from campaigns import clock
from campaigns.tasks import service as tasks
from campaigns.tasks import views as task_views
from bot.credentials import wecom_oauth_base
from bot.errors import WeChatAPIError
from config.database import request_session
from config.errors import Forbidden
from config.inputs import DbId
from config.pagination import decode_cursor, page_of
from config.settings import get_settings
from console import sessions
from console.auth import set_session_cookie
from console.web import PREFIX, console_router, is_htmx, poster, render, viewer
from membership import service as members
from membership.access import Principal, visible_members
from membership.views import members_out

router = console_router()
anyone_post = poster()
PAGE = 20
TASKS_SHOWN = 50
INVALID_CODE = 40029


@router.get("/workbench")
def workbench(request: Request, cursor: str | None = None, session: Session = request_session,
              who: Principal = Depends(viewer)):
    """The signed-in staff member's customers, newest relation last, a page at a time."""
    found = members.find_members(session, visible=visible_members(who), after_id=decode_cursor(cursor),
                                 limit=PAGE + 1)
    page, next_cursor = page_of(found, PAGE, lambda m: m.id)
    if is_htmx(request) and cursor:
        return render(request, "workbench_rows.html", rows=members_out(session, page), next_cursor=next_cursor)
    now = clock.now()
    mine = [t for status in ("overdue", "open") for t in task_views.find_tasks(
        session, who, staff=None, status=status, now=now, after_id=None, limit=TASKS_SHOWN)]
    return render(request, "workbench.html", rows=members_out(session, page), next_cursor=next_cursor,
                  tasks=task_views.tasks_out(session, mine, now))


@router.post("/workbench/tasks/{task_id}/done")
def workbench_task_done(request: Request, task_id: DbId, session: Session = request_session,
                        who: Principal = Depends(anyone_post)):
    """完成: the task is done (once) and its card updated; the task's row comes back, marked done."""
    task = task_views.visible_task(session, who, task_id)
    tasks.complete(session, task.id, via="workbench")
    session.expire_all()
    done = task_views.tasks_out(session, [task_views.visible_task(session, who, task_id)], clock.now())
    return render(request, "workbench_task.html", t=done[0])


@router.get("/workbench/signin")
def workbench_signin(request: Request):
    """Send the browser to WeCom's authorize page (snsapi_base), bound to this browser by a state cookie."""
    binding = secrets.token_urlsafe(24)
    settings = get_settings()
    url = wecom_client().oauth_url(wecom_oauth_base(settings), f"{settings.public_url}console/workbench/oauth",
                                   sessions.sign("oauth", binding)[:32])
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(sessions.STATE_COOKIE, binding, max_age=600, path=PREFIX, httponly=True, samesite="lax",
                        secure=settings.public_url.startswith("https://"))
    return response


@router.get("/workbench/oauth")
def workbench_oauth(request: Request, code: str = "", state: str = "", session: Session = request_session):
    """WeCom's redirect back: the code names the staff member (once); a session cookie replaces it."""
    binding = request.cookies.get(sessions.STATE_COOKIE)
    if not binding or not secrets.compare_digest(sessions.sign("oauth", binding)[:32], state):
        raise Forbidden("登录状态不符，请从企业微信重新打开工作台 (state mismatch)")
    if not code:
        raise Forbidden("企业微信没有给出登录码 (no code)")
    try:
        who = wecom_client().user_by_code(code)
    except WeChatAPIError as exc:
        if exc.errcode == INVALID_CODE:
            raise Forbidden("登录码无效、已使用或已过期，请重新打开工作台 (40029 invalid code)") from None
        raise
    userid = who.get("userid") or who.get("UserId")
    if not userid:
        raise Forbidden("只有企业成员可以使用工作台")
    staff = members.find_staff(session, userid)
    if staff is None or not staff.active:
        raise Forbidden(f"员工 {userid} 尚未同步到 Siyu，请管理员运行 siyu sync wecom")
    response = RedirectResponse(f"{PREFIX}/workbench", status_code=303)
    set_session_cookie(response, sessions.sign_in_staff(session, staff))
    response.delete_cookie(sessions.STATE_COOKIE, path=PREFIX)
    return response


@router.get("/workbench/signed-out")
def workbench_signed_out(request: Request):
    """After sign-out: a link back in through WeCom."""
    return render(request, "workbench_signed_out.html")
