"""The handler table: `(source, MsgType, Event, ChangeType)` → one small function.

Handlers register with `@handles(source, msg_type, event, change_type)` in their module. Which modules those
are is listed once, in `siyu.packages.HANDLERS`; `siyu.wiring.install()` loads them in every process (server,
worker, scheduler, CLI, tests), and a process that consults the table without having loaded it fails loudly
instead of marking every event unhandled.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from config.types import from_unix, utcnow
from webhooks.exceptions import PermanentEventError

Key = tuple[str, str, str, str]
HANDLERS: dict[Key, Callable[[Session, Event], None]] = {}

_loaded: list[str] = []  # the handler modules `load` imported


class HandlersNotLoaded(RuntimeError):
    """The handler table was consulted before `siyu.wiring.install()` loaded it (the job fails and is retried)."""


@dataclass(frozen=True)
class Event:
    """What a handler gets: the inbox row's id, source and parsed fields."""

    inbox_id: int
    source: str
    data: dict

    def get(self, name: str, default: str = "") -> str:
        """A top-level text field, stripped ('' when absent)."""
        value = self.data.get(name)
        return value.strip() if isinstance(value, str) else default

    def require(self, name: str) -> str:
        """A top-level text field the handler cannot do without; PermanentEventError when absent or blank."""
        value = self.get(name)
        if not value:
            raise PermanentEventError(f"event has no {name}")
        return value

    @property
    def at(self) -> datetime:
        """When Tencent says it happened (CreateTime), else now; PermanentEventError when CreateTime is corrupt."""
        raw = self.data.get("CreateTime")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return utcnow()
        at = from_unix(raw.strip() if isinstance(raw, str) else raw)
        if at is None:
            raise PermanentEventError(f"CreateTime {str(raw)[:40]!r} is not a time between 2000 and 2100")
        return at

    def key(self, what: str) -> str:
        """A timeline dedupe key for one effect of this event: the same event writes it once."""
        return f"inbox:{self.inbox_id}:{what}"[:128]


def handles(source: str, msg_type: str, event: str = "", change_type: str = ""):
    """Register the decorated function for one event kind."""

    def register(fn):
        key = (source, msg_type, event, change_type)
        if key in HANDLERS and HANDLERS[key] is not fn:
            raise RuntimeError(f"two handlers for {key}")
        HANDLERS[key] = fn
        return fn

    return register


def load(modules: Iterable[str]) -> None:
    """Import the handler modules named (their `@handles` entries fill the table); called by `siyu.wiring.install()`."""
    for name in modules:
        importlib.import_module(name)
        if name not in _loaded:
            _loaded.append(name)


def handlers() -> dict[Key, Callable]:
    """The complete table; HandlersNotLoaded when this process has not loaded it."""
    if not _loaded:
        raise HandlersNotLoaded("the handler table is empty: siyu.wiring.install() was not called in this process")
    return HANDLERS


def handler_for(source: str, msg_type: str, event: str, change_type: str) -> Callable | None:
    """The handler of an event kind, or None when Siyu does not handle it."""
    return handlers().get((source, msg_type, event, change_type))
