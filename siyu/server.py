"""The served app: create_app plus, in embedded mode, the in-process scheduler."""
from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from config.files import secure_var_dir
from config.logging import install_log_redaction
from config.settings import get_settings
from siyu.app import create_app

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _embedded_lifespan(app: FastAPI):
    from apscheduler.schedulers.background import BackgroundScheduler

    from config.queue import in_process_runner
    from siyu.schedules import install

    sched = BackgroundScheduler(timezone=get_settings().tz)
    log.info("scheduler: %d schedules in-process (embedded mode)", install(sched))
    sched.start()
    try:
        yield
    finally:
        sched.shutdown(wait=False)
        in_process_runner().drain(timeout=10)


def _warm_jieba() -> None:
    # The dictionary takes ~0.6 s to load: not inside the first passive reply's 5 seconds.
    import threading

    import jieba

    threading.Thread(target=jieba.initialize, name="jieba-warm", daemon=True).start()


def create_server() -> FastAPI:
    """The app `siyu serve` runs."""
    # Here, not only in the CLI: every uvicorn (or gunicorn) worker process builds its app with this factory.
    install_log_redaction()
    secure_var_dir(get_settings().var_dir)
    app = create_app()
    if get_settings().embedded:
        app.router.lifespan_context = _embedded_lifespan
    app.router.on_startup.append(_warm_jieba)
    return app
