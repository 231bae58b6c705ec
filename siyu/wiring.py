"""The one place that connects packages across floors, installed explicitly in every process.

A lower floor never imports a higher one, and siblings never import each other: where one must react to
another, the reaction is bound here. `install()` is called by the app factory, the worker, the scheduler,
every CLI command and the test suite's root conftest; nothing is registered as a side effect of an import.

- the profile store's hooks (`membership.hooks`) → the segments' listeners (counters, re-checks, WeCom tags)
  and the trigger campaigns' entries; the segments' usage registry ← the campaigns whose audience a segment is;
- the intake's handler table ← the handler modules of `siyu.packages.HANDLERS`;
- the official account's TEMPLATESENDJOBFINISH events (`webhooks.registry`) → the oa_template action's ledger;
- the intake's template-card clicks (`webhooks.registry`) → CARD_HANDLERS (staff task cards:
  完成 completes the task and updates the card);
- a merge → bookings and group-buy orders move to the surviving member;
- the member card's orders (`miniprogram_api.cards.on_orders`) ← group-buy's order lister;
- the intake's Pay notifications (`webhooks.registry`) → group-buy: the order and refund lookups that check a
  notification before it is answered, and the handler that applies it, so that no sibling imports another.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from campaigns import oa_template
from campaigns import service as campaigns
from campaigns import triggers as campaign_triggers
from campaigns.bookings import service as bookings
from campaigns.groupbuy import offers as groupbuy_offers
from campaigns.groupbuy import payments as groupbuy_payments
from campaigns.groupbuy import refunds as groupbuy_refunds
from campaigns.tasks import service as staff_tasks
from membership import hooks
from miniprogram_api import cards
from segments import listeners as segment_listeners
from segments import usage as segment_usage
from siyu import packages
from webhooks import dispatch, registry

CARD_HANDLERS: tuple[Callable, ...] = (staff_tasks.on_card_click,)  # fn(session, card) per template_card_event

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Bind every listener and handler across packages; safe to call again (the second call does nothing)."""
    global _installed
    with _lock:
        if _installed:
            return
        hooks.on_event(segment_listeners.on_timeline_event)
        hooks.on_merge(segment_listeners.on_members_merged)
        hooks.on_trait(segment_listeners.on_trait_changed)
        hooks.on_tag(segment_listeners.on_tag_changed)
        hooks.on_merge(bookings.move_member)
        hooks.on_merge(groupbuy_offers.move_member)
        hooks.on_event(campaign_triggers.on_timeline_event)  # trigger campaigns enter members
        segment_usage.uses(campaigns.users_of_segment)  # a segment a campaign reaches is not deleted
        dispatch.load(packages.HANDLERS)
        for handler in CARD_HANDLERS:
            registry.on_template_card(handler)
        registry.on_template_result(oa_template.on_template_result)  # OA template messages' fates → the ledger
        registry.on_pay_order(groupbuy_payments.expected_amount)
        registry.on_pay_refund(groupbuy_refunds.expected)
        registry.on_pay_notification(groupbuy_payments.on_notification)
        cards.on_orders(groupbuy_offers.orders_of_member)
        _installed = True
