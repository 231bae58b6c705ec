"""Sign-in with an API token, sign-out, and the console's own assets (nothing is loaded from elsewhere)."""
from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import Depends, Request
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy.orm import Session
from starlette.datastructures import ImmutableMultiDict

from config.database import request_session
from config.errors import NotFound
from config.settings import get_settings
from console import sessions
from console.web import HERE, PREFIX, check_csrf, console_router, form_data, render

router = console_router()
STATIC = (HERE / "static").resolve()
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png",
         ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}


def _safe_next(target: str | None) -> str:
    # Only a console path: anything else (another host, `//evil`, a scheme) would make sign-in an open redirect.
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


def set_session_cookie(response, secret: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, only for /console, Secure behind https."""
    response.set_cookie(sessions.COOKIE, secret, max_age=int(sessions.LIFETIME.total_seconds()), path=PREFIX,
                        httponly=True, samesite="lax", secure=get_settings().public_url.startswith("https://"))


@router.get("/login")
def login_page(request: Request, next: str = "", session: Session = request_session):
    """The sign-in form (a signed-in browser goes straight on)."""
    if sessions.principal_of(session, request.cookies.get(sessions.COOKIE)) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next)


def _login_form(request: Request, next: str, error: str | None = None, status_code: int = 200):
    binding = request.cookies.get(sessions.LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = render(request, "login.html", status_code=status_code, login_csrf=sessions.csrf_token(binding),
                      next=_safe_next(next), error=error)
    response.set_cookie(sessions.LOGIN_COOKIE, binding, path=PREFIX, httponly=True, samesite="lax",
                        secure=get_settings().public_url.startswith("https://"))
    return response


@router.post("/login")
def login(request: Request, form: ImmutableMultiDict = Depends(form_data), session: Session = request_session):
    """Exchange an API token for a session cookie; a wrong, revoked or expired token is told so."""
    check_csrf(request, form, sessions.LOGIN_COOKIE)
    secret = sessions.sign_in_with_token(session, form.get("token", ""))
    if secret is None:
        return _login_form(request, form.get("next", ""), "令牌无效、已撤销或已过期 (invalid token)", 401)
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    set_session_cookie(response, secret)
    response.delete_cookie(sessions.LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
def logout(request: Request, form: ImmutableMultiDict = Depends(form_data), session: Session = request_session):
    """Revoke this browser's session; the next page asks to sign in again."""
    check_csrf(request, form, sessions.COOKIE)
    workbench = bool(sessions.principal_of(session, request.cookies.get(sessions.COOKIE))) and \
        form.get("from") == "workbench"
    sessions.sign_out(session, request.cookies.get(sessions.COOKIE))
    response = RedirectResponse(f"{PREFIX}/workbench/signed-out" if workbench else f"{PREFIX}/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path=PREFIX)
    return response


@router.get("/static/{path:path}")
def asset(path: str):
    """A file of console/static (vendored htmx and ECharts with their licenses, the console's CSS and JS)."""
    file = (STATIC / path).resolve()
    if not file.is_relative_to(STATIC) or not file.is_file() or file.suffix not in TYPES:
        raise NotFound(f"no asset {path}")
    return FileResponse(file, media_type=TYPES[file.suffix], headers={"Cache-Control": "public, max-age=3600",
                                                                      "X-Content-Type-Options": "nosniff"})


def static_files() -> list[Path]:
    """Every asset the console serves (for the same-origin check)."""
    return sorted(p for p in STATIC.rglob("*") if p.is_file())
