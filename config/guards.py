"""Request guards every HTTP API shares: values no database can store are 422 before any route sees them.

PostgreSQL refuses NUL in text and integers past 64 bits; SQLite's driver overflows on the latter. A route
that forgot a bound would answer 500, so these checks sit in front of every route, including later ones.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

log = logging.getLogger(__name__)

GUARDED_PREFIXES = ("/api/", "/mp/", "/console/")  # Tencent's webhooks follow their own protocols
INT64 = range(-(2**63), 2**63)
NUL = "NUL characters are not allowed"


def _json_problems(value) -> Iterator[tuple]:
    """Where parsed JSON holds a string (or key) with NUL or an integer past 64 bits (iterative: bodies nest deep)."""
    stack = [(("body",), value)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                yield loc, "string_nul", NUL
        elif isinstance(value, int) and not isinstance(value, bool):
            if value not in INT64:
                yield loc, "int_too_large", "integers must fit in 64 bits"
        elif isinstance(value, dict):
            for key, sub in value.items():
                if "\x00" in key:
                    yield (*loc, key), "string_nul", NUL
                stack.append(((*loc, key), sub))
        elif isinstance(value, list):
            stack.extend(((*loc, i), sub) for i, sub in enumerate(value))


def _is_json(content_type: bytes) -> bool:
    # As FastAPI decides: no content type, application/json or application/*+json bodies are parsed as JSON.
    main, _, sub = content_type.split(b";")[0].strip().lower().partition(b"/")
    return not main or (main == b"application" and (sub == b"json" or sub.endswith(b"+json")))


def _pairs_problems(text: str, where: str) -> list[tuple]:
    return [((where, key), "string_nul", NUL) for key, value in parse_qsl(text, keep_blank_values=True)
            if "\x00" in key or "\x00" in value]


def _problems(scope: dict, body: bytes) -> list[dict]:
    found = [(("path",), "string_nul", NUL)] if "\x00" in scope["path"] else []
    found += _pairs_problems(scope.get("query_string", b"").decode("latin-1"), "query")
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    if body and _is_json(content_type):
        try:
            found.extend(_json_problems(json.loads(body)))
        except (ValueError, RecursionError):
            pass  # the route's own parser answers a broken body
    elif body and content_type.startswith(b"application/x-www-form-urlencoded"):
        found += _pairs_problems(body.decode("latin-1"), "body")
    return [{"type": kind, "loc": list(loc), "msg": msg} for loc, kind, msg in found]


class RefuseUnstorable:
    """ASGI middleware: 422 for NUL characters in the path, query or body, or JSON integers past 64 bits."""

    def __init__(self, app, prefixes: tuple[str, ...] = GUARDED_PREFIXES):
        self.app, self.prefixes = app, prefixes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problems = _problems(scope, body)
        if problems:
            await JSONResponse({"detail": problems}, status_code=422)(scope, receive, send)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # Neither the value nor the statement goes into the answer or the log: they may hold phones or tokens.
    cause = type(getattr(exc, "orig", None) or exc).__name__
    log.warning("request %s %s: a value was out of range (%s)", request.method, request.url.path, cause)
    return JSONResponse({"detail": "a value is out of range"}, status_code=422)


def install(app: FastAPI) -> None:
    """Put the guards in front of every route of `app`; a value the database refuses anyway answers 422."""
    app.add_middleware(RefuseUnstorable)
    # The backstop: PostgreSQL refuses a value (DataError), SQLite's driver or datetime arithmetic overflows.
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(OverflowError, _out_of_range)
