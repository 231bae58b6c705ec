"""What every console page shares: the route class that answers errors as pages, templates, sign-in and CSRF.

A page module declares `router = console_router()` and its routes; `siyu.packages.ROUTERS` mounts it and
`console.nav.NAV` gives it a menu entry. Scope comes from membership.access, exactly as in the API.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import ImmutableMultiDict

from config.database import request_session
from config.errors import DomainError, Forbidden
from config.settings import get_settings
from console import nav, sessions
from membership.access import Principal
from membership.models import Role

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PREFIX = "/console"
ROLE_LABELS = {"admin": "管理员", "marketer": "运营", "store_manager": "店长", "staff": "店员"}
# Same-origin only, also enforced by the browser: no page can load or send anything elsewhere.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class SignInRequired(DomainError):
    """No live console session: the browser is sent to sign in."""

    status_code = 401


def _localtime(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(get_settings().tz).strftime(fmt)


def local_input(raw: str) -> str:
    """A form's datetime-local value (business time, SIYU_TIMEZONE) as ISO 8601 with its offset, for the API's
    bodies to validate; anything else as given (the API's message then says what is wrong)."""
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        return raw
    return (parsed.replace(tzinfo=get_settings().tz) if parsed.tzinfo is None else parsed).isoformat()


def _yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
env.filters.update(localtime=_localtime, yuan=_yuan, role=lambda r: ROLE_LABELS.get(str(r), str(r)),
                   tojson_compact=lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")))


def is_htmx(request: Request) -> bool:
    """Whether htmx made the request (it wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    """A template rendered with what every page needs (who is signed in, the menu, the CSRF token)."""
    who: Principal | None = getattr(request.state, "principal", None)
    secret = request.cookies.get(sessions.COOKIE)
    context.setdefault("csrf", sessions.csrf_token(secret) if secret and who else "")
    html = env.get_template(template).render(request=request, who=who, nav=nav.visible(who, request.url.path),
                                             prefix=PREFIX, tz=get_settings().timezone, **context)
    return HTMLResponse(html, status_code=status_code, headers={"Content-Security-Policy": CSP,
                                                                "Cache-Control": "no-store"})


def _sign_in_url(request: Request) -> str:
    if request.url.path.startswith(f"{PREFIX}/workbench"):
        return f"{PREFIX}/workbench/signin"
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PREFIX}/login?next={quote(target)}"


def _error(request: Request, status: int, message: str) -> Response:
    if status == 401:
        url = _sign_in_url(request)
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)
    template = "_error_fragment.html" if is_htmx(request) else "error.html"
    return render(request, template, status_code=status, status=status, message=message)


class ConsoleRoute(APIRoute):
    """A route whose errors are pages (or fragments for htmx): 401 goes to sign-in, 403/404/409/422 say why."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as exc:
                return _error(request, exc.status_code, exc.detail)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:])
                return _error(request, 422, f"{where}: {first.get('msg', 'invalid input')}")

        return route


def console_router() -> APIRouter:
    """The router of one console page module."""
    return APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


# -- who is signed in ----------------------------------------------------------------------------------
def viewer(request: Request, session: Session = request_session) -> Principal:
    """Dependency: the signed-in principal, or SignInRequired."""
    who = sessions.principal_of(session, request.cookies.get(sessions.COOKIE))
    if who is None:
        raise SignInRequired("please sign in")
    request.state.principal = who
    return who


def viewer_of(*roles: Role):
    """Dependency factory: the signed-in principal, Forbidden unless admin or one of `roles` (as `require`)."""

    def check(who: Principal = Depends(viewer)) -> Principal:
        if not who.allows(*roles):
            raise Forbidden(f"role {who.role.value} may not do this")
        return who

    return check


async def form_data(request: Request) -> ImmutableMultiDict:
    """Dependency: the URL-encoded form of a POST (the console sends no files)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return ImmutableMultiDict(parse_qsl(body, keep_blank_values=True))


def check_csrf(request: Request, form: ImmutableMultiDict, cookie: str) -> None:
    """Forbidden unless the form (or htmx's X-CSRF-Token header) carries this browser's CSRF token."""
    given = form.get("csrf") or request.headers.get("X-CSRF-Token")
    if not sessions.csrf_ok(request.cookies.get(cookie), given):
        raise Forbidden("CSRF token missing or wrong: reload the page and try again")


def poster(*roles: Role):
    """Dependency factory for POSTs: the signed-in principal (admin or `roles`; any role when none are given)
    after the CSRF check; the form is at `request.state.form`."""
    who_dep = viewer_of(*roles) if roles else viewer

    def check(request: Request, who: Principal = Depends(who_dep),
              form: ImmutableMultiDict = Depends(form_data)) -> Principal:
        check_csrf(request, form, sessions.COOKIE)
        request.state.form = form
        return who

    return check


# -- forms ---------------------------------------------------------------------------------------------
def attempt(session: Session, fields: tuple[str, ...], action) -> dict[str, str]:
    """Run `action` in a savepoint: {} when it succeeded, else the API's messages by form field, nothing saved.

    A message the API prefixes with a field (`store: …`) goes next to that field, any other under the form.
    """
    try:
        with session.begin_nested():
            action()
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for e in exc.errors():
            field = str(e["loc"][0]) if e.get("loc") else "_form"
            errors.setdefault(field if field in fields else "_form", f"{field}: {e['msg']}")
        return errors
    except DomainError as exc:
        if isinstance(exc, SignInRequired):
            raise
        head = exc.detail.split(":", 1)[0].strip()
        return {head if head in fields else "_form": exc.detail}
    return {}
