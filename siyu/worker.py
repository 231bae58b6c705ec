"""The RQ worker process: everything a job needs is imported once, before RQ forks a work-horse per job."""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

JOB_MODULES = ("bot.jobs", "webhooks.jobs", "segments.jobs", "campaigns.jobs")


def preload() -> None:
    """Import the listeners and every jobs module, and load jieba's dictionary, in the parent process.

    A forked work-horse inherits them; without this each job pays for the imports and jieba's
    dictionary (about half a second) again.
    """
    import siyu.wiring  # noqa: F401 - the same listeners as the server

    for name in JOB_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()


def run(burst: bool = False) -> None:
    """Work the fast, default and low queues of the configured Redis, in that priority."""
    from rq import Worker

    from config.queue import QUEUES
    from config.redis import get_redis

    preload()
    Worker(list(QUEUES), connection=get_redis()).work(burst=burst, with_scheduler=True)
