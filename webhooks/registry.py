"""Handlers other packages give the intake, bound by `siyu.wiring.install()`, so webhooks never imports them.

`on_template_card(fn)`: fn(session, card) for every template_card_event (a staff member clicked a task
button); `card` holds the event's fields: FromUserName (staff userid), EventKey, TaskId, CardType,
ResponseCode, SelectedItems, AgentID, CreateTime.
"""
from __future__ import annotations

from collections.abc import Callable

TEMPLATE_CARD_HANDLERS: list[Callable] = []


def on_template_card(fn: Callable) -> Callable:
    """Register `fn(session, card: dict)` for every template-card button click."""
    if fn not in TEMPLATE_CARD_HANDLERS:
        TEMPLATE_CARD_HANDLERS.append(fn)
    return fn
