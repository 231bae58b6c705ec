"""The app factory: every package's router mounted on one FastAPI app."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from config import guards
from config.errors import DomainError
from config.settings import get_settings
from siyu import docs, packages, wiring
from siyu.body_limit import BodyLimit

log = logging.getLogger(__name__)


def routers() -> list:
    """Every router Siyu serves (siyu.packages.ROUTERS), in mount order."""
    return [module.router for module in packages.modules(packages.ROUTERS)]


def create_app() -> FastAPI:
    """A Siyu app for the current settings (the sandbox is mounted at /sandbox when a channel uses it)."""
    wiring.install()
    settings = get_settings()
    app = FastAPI(title="Siyu", version="0.1.0", docs_url=None, redoc_url=None,
                  description="私域: WeChat/WeCom SCRM and private-domain operations for store chains")
    for router in routers():
        app.include_router(router)
    docs.install(app)
    app.add_exception_handler(DomainError, domain_error)
    guards.install(app)
    _mount_sandbox(app, settings)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def domain_error(request: Request, exc: DomainError) -> JSONResponse:
    """The one mapping of domain errors to HTTP: the error's status, `{"detail": its message}`."""
    if exc.status_code >= 500:
        log.warning("%s %s: %s %s", request.method, request.url.path, exc.status_code, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


def _mount_sandbox(app: FastAPI, settings) -> None:
    channels = [c for c in ("wecom", "official_account", "miniprogram", "pay") if settings.uses_sandbox(c)]
    if not channels:
        return
    from bot.sandbox.app import create_sandbox_app

    app.mount("/sandbox", create_sandbox_app())
    log.info("sandbox: serving %s at /sandbox", ", ".join(channels))
