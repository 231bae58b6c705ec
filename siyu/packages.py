"""What each package contributes, listed once: its tables, routers, callback handlers and schedules.

Alembic and `create_all` read MODELS, the app mounts ROUTERS, `siyu.wiring.install()` loads HANDLERS into
the intake's table, the scheduler installs SCHEDULES, and the worker preloads all of them. A new package
(campaigns, miniprogram_api, console) adds its modules here; a test fails when a module of one of these
kinds exists but is not listed.
"""
from __future__ import annotations

import importlib

MODELS = (
    "config.models", "membership.models", "bot.models", "webhooks.models", "webhooks.transfers.models",
    "segments.models", "campaigns.models", "campaigns.bookings.models", "campaigns.groupbuy.models",
    "campaigns.tasks.models", "miniprogram_api.models", "console.models",
)
ROUTERS = (  # modules with a `router`, in mount order
    "siyu.ops", "membership.api", "segments.api",
    "webhooks.wecom.api", "webhooks.official_account.api", "webhooks.miniprogram.api", "webhooks.admin_api",
    "webhooks.transfers.api", "webhooks.wechatpay.api",
    "campaigns.api", "campaigns.bookings.api", "campaigns.groupbuy.api", "campaigns.tasks.api",
    "miniprogram_api.api", "miniprogram_api.bookings", "miniprogram_api.groupbuy_api",
    # The console's pages (console/nav.py gives each its menu entry).
    "console.auth", "console.overview", "console.members", "console.segments", "console.ops", "console.workbench",
    "console.campaigns", "console.groupbuy", "console.bookings", "console.tasks",
)
HANDLERS = (  # modules whose `@handles` entries make up the intake's handler table
    "webhooks.wecom.contacts", "webhooks.wecom.chats", "webhooks.wecom.tags", "webhooks.wecom.cards",
    "webhooks.official_account.handlers", "webhooks.miniprogram.handlers",
    "webhooks.wechatpay.handlers",
)
SCHEDULES = ("webhooks.scheduled", "segments.scheduled", "campaigns.scheduled", "campaigns.bookings.scheduled",
             "campaigns.groupbuy.scheduled", "campaigns.tasks.scheduled")  # modules with `SCHEDULES`


def modules(names: tuple[str, ...]) -> list:
    """The modules named, imported."""
    return [importlib.import_module(name) for name in names]


def import_all() -> None:
    """Import every listed module (the worker does this once, before it takes jobs)."""
    for names in (MODELS, ROUTERS, HANDLERS, SCHEDULES):
        modules(names)
