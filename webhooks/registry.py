"""Handlers other packages give the intake, bound by `siyu.wiring.install()`, so webhooks never imports them.

`on_template_card(fn)`: fn(session, card) for every template_card_event (a staff member clicked a task
button); `card` holds the event's fields: FromUserName (staff userid), EventKey, TaskId, CardType,
ResponseCode, SelectedItems, AgentID, CreateTime.
`on_template_result(fn)`: fn(session, openid=, msgid=, status=, at=) for every official-account
TEMPLATESENDJOBFINISH (a template message's fate: success, failed:user block, failed: system failed).
"""
from __future__ import annotations

from collections.abc import Callable

TEMPLATE_CARD_HANDLERS: list[Callable] = []


def on_template_card(fn: Callable) -> Callable:
    """Register `fn(session, card: dict)` for every template-card button click."""
    if fn not in TEMPLATE_CARD_HANDLERS:
        TEMPLATE_CARD_HANDLERS.append(fn)
    return fn


TEMPLATE_RESULT_HANDLERS: list[Callable] = []


def on_template_result(fn: Callable) -> Callable:
    """Register `fn(session, *, openid, msgid, status, at)` for every template message's reported fate."""
    if fn not in TEMPLATE_RESULT_HANDLERS:
        TEMPLATE_RESULT_HANDLERS.append(fn)
    return fn


# -- WeChat Pay notifications (/webhooks/wechatpay) ---------------------------------------------------------
# `on_pay_order(fn)`: fn(session, out_trade_no) -> the amount in fen Siyu expects for that order, or None when
#   the order is not the registrant's. Consulted before a TRANSACTION.* notification is answered.
# `on_pay_refund(fn)`: fn(session, out_refund_no) -> (out_trade_no, refund fen), or None. Same, for REFUND.*.
# `on_pay_notification(fn)`: fn(session, event_type, resource) for every accepted notification, in the inbox
#   job; each registrant ignores what is not its own.
PAY_ORDER_LOOKUPS: list[Callable] = []
PAY_REFUND_LOOKUPS: list[Callable] = []
PAY_HANDLERS: list[Callable] = []


def on_pay_order(fn: Callable) -> Callable:
    """Register `fn(session, out_trade_no) -> int | None`: the amount expected for an order of the registrant."""
    if fn not in PAY_ORDER_LOOKUPS:
        PAY_ORDER_LOOKUPS.append(fn)
    return fn


def on_pay_refund(fn: Callable) -> Callable:
    """Register `fn(session, out_refund_no) -> (out_trade_no, refund_fen) | None` for refunds of the registrant."""
    if fn not in PAY_REFUND_LOOKUPS:
        PAY_REFUND_LOOKUPS.append(fn)
    return fn


def on_pay_notification(fn: Callable) -> Callable:
    """Register `fn(session, event_type, resource: dict)` for every accepted Pay notification."""
    if fn not in PAY_HANDLERS:
        PAY_HANDLERS.append(fn)
    return fn
