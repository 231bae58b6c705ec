"""The app factory: every package's router mounted on one FastAPI app."""
from __future__ import annotations

import logging

from fastapi import FastAPI

from config import guards
from config.settings import get_settings
from siyu import docs
from siyu.body_limit import BodyLimit

log = logging.getLogger(__name__)


def routers() -> list:
    """Every router Siyu serves, in mount order."""
    from bot.transfers.api import router as transfers_router
    from membership.api import router as membership_router
    from segments.api import router as segments_router
    from siyu.ops import router as ops_router
    from webhooks.api import ROUTERS as webhook_routers

    return [ops_router, membership_router, transfers_router, segments_router, *webhook_routers]


def create_app() -> FastAPI:
    """A Siyu app for the current settings (the sandbox is mounted at /sandbox when a channel uses it)."""
    import siyu.wiring  # noqa: F401 - registers the cross-floor listeners

    settings = get_settings()
    app = FastAPI(title="Siyu", version="0.1.0", docs_url=None, redoc_url=None,
                  description="私域: WeChat/WeCom SCRM and private-domain operations for store chains")
    for router in routers():
        app.include_router(router)
    docs.install(app)
    guards.install(app)
    _mount_sandbox(app, settings)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _mount_sandbox(app: FastAPI, settings) -> None:
    channels = [c for c in ("wecom", "official_account", "miniprogram", "pay") if settings.uses_sandbox(c)]
    if not channels:
        return
    from bot.sandbox.app import create_sandbox_app

    app.mount("/sandbox", create_sandbox_app())
    log.info("sandbox: serving %s at /sandbox", ", ".join(channels))
