"""Handler tables of the sandbox: one table per Tencent host, one small function per API path."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from bot.sandbox.state import SandboxState, get_state
from bot.sandbox.store import shared

Handler = Callable[[SandboxState, dict, dict], dict]


@dataclass(frozen=True)
class Route:
    handler: Handler
    auth: bool  # needs an access_token of the table's app


class Table:
    """`(method, path) -> Route`, registered with the `api` decorator."""

    def __init__(self, name: str, app_of: Callable[[SandboxState, str], str]):
        self.name = name
        self.app_of = app_of  # which corp / app id the token of this path must belong to
        self.routes: dict[tuple[str, str], Route] = {}

    def api(self, method: str, path: str, auth: bool = True) -> Callable[[Handler], Handler]:
        """Register `handler` for `method path`."""
        def deco(fn: Handler) -> Handler:
            self.routes[(method, path)] = Route(fn, auth)
            return fn

        return deco

    def dispatch(self, method: str, path: str, body: dict, query: dict) -> dict:
        """Answer one call as Tencent would: limits and faults, then the token, then the handler."""
        route = self.routes.get((method, path))
        if route is None:
            raise HTTPException(404, f"sandbox {self.name}: no API {method} {path}")
        if latency := get_state().latency:  # outside the lock: calls in flight wait side by side, as on the internet
            time.sleep(latency)
        with shared() as state:  # current across `siyu serve` workers and the `siyu sandbox` commands
            app = self.app_of(state, path)
            refused = state.gate(app, path)
            if refused:
                return refused
            if route.auth:
                refused = state.check_token(app, query.get("access_token"))
                if refused:
                    return refused
            answer = route.handler(state, body, query)
            if not answer.get("errcode") and state.take_lost_answer(path):  # carried out; the caller never learns
                raise HTTPException(504, "sandbox: the answer was lost on its way back")
            return answer


async def json_body(request: Request) -> dict:
    """The request body as JSON (Tencent's SDKs often send it without a content type); {} when empty."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {"__invalid_json__": True}
    return body if isinstance(body, dict) else {"__invalid_json__": True}
