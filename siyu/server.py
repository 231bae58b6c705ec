"""The served app: create_app plus, in embedded mode, the in-process scheduler."""
from __future__ import annotations

import contextlib
import logging
import threading

from fastapi import FastAPI

from config.files import secure_var_dir
from config.logging import install_log_redaction
from config.queue import answering, in_process_runner
from config.settings import get_settings
from siyu.app import create_app
from siyu.leader import FileLease
from siyu.schedules import check_overrides, elected_scheduler

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _embedded_lifespan(app: FastAPI):
    # Two embedded servers on one var/ (another port, a second `make run`) would double every schedule:
    # the one holding the lock fires them, the other stands by until it exits.
    settings = get_settings()
    check_overrides()
    lease = FileLease(settings.var_dir / "scheduler.lock", ttl=settings.scheduler_lease_seconds)
    elector = elected_scheduler(lease, say=log.info)
    done = threading.Event()
    thread = threading.Thread(target=elector.run, args=(done,), name="siyu-scheduler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(10)
        in_process_runner().drain(timeout=10)


class _AnswerFirst:
    """Embedded mode: while a callback is being answered, the server's own jobs give way (see config.queue)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/webhooks/"):
            await self.app(scope, receive, send)
            return
        with answering():
            await self.app(scope, receive, send)


def _warm_jieba() -> None:
    # The dictionary takes ~0.6 s to load: not inside the first passive reply's 5 seconds.
    import jieba

    threading.Thread(target=jieba.initialize, name="jieba-warm", daemon=True).start()


def create_server() -> FastAPI:
    """The app `siyu serve` runs."""
    # Here, not only in the CLI: every uvicorn (or gunicorn) worker process builds its app with this factory.
    install_log_redaction()
    settings = get_settings()
    secure_var_dir(settings.var_dir)
    if any(settings.uses_sandbox(c) for c in ("wecom", "official_account", "miniprogram", "pay")):
        # Every worker (and `siyu sandbox seed|send`) must see one sandbox corp, not one each.
        from bot.sandbox import store

        store.share(settings)
    app = create_app()
    if get_settings().embedded:
        app.router.lifespan_context = _embedded_lifespan
        app.add_middleware(_AnswerFirst)
    app.router.on_startup.append(_warm_jieba)
    return app
