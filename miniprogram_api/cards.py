"""The member card's parts that come from other packages, plugged in by siyu/wiring.py.

`GET /mp/v1/me` lists the member's orders from every registered source (group-buy registers its own once it
lands), so this package never imports a sibling it is not allowed to know.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

OrderSource = Callable[[Session, int], list[dict]]  # (session, member_id) -> the member's orders, newest first
ORDER_SOURCES: list[OrderSource] = []


def on_orders(source: OrderSource) -> OrderSource:
    """Register `source(session, member_id)` as a lister of a member's orders on their card."""
    if source not in ORDER_SOURCES:
        ORDER_SOURCES.append(source)
    return source


def orders_of(session: Session, member_id: int) -> list[dict]:
    """Every registered source's orders of a member."""
    return [order for source in ORDER_SOURCES for order in source(session, member_id)]
