"""The RQ worker process.

By default jobs run in the worker process itself (RQ's SimpleWorker): its imports, mapper configuration,
compiled SQL, database pool and API clients stay warm, so a job costs its own work (tens of ms), not a
cold start (about 0.4 s for a forked work-horse here). `--fork` restores one work-horse per job for
isolation. Either way a worker killed mid-job loses nothing: RQ marks the job abandoned and the inbox
sweeper re-enqueues what was not done.
"""
from __future__ import annotations

import logging

import jieba
from rq import SimpleWorker, Worker
from sqlalchemy.orm import configure_mappers

from config.redact import redact

from siyu import packages, wiring

log = logging.getLogger(__name__)


def preload() -> None:
    """Install the wiring, import every listed module, and load jieba's dictionary, in the parent process.

    A forked work-horse inherits them; without this each job pays for the imports and jieba's
    dictionary (about half a second) again.
    """
    wiring.install()  # the same listeners and handlers as the server
    packages.import_all()  # every job lives in a module these reach
    configure_mappers()
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()


class _Redacting:
    """RQ keeps a failed job's traceback in Redis: it is redacted first, like every stored error."""

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string=""):
        return super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                          exc_string=redact(exc_string) or "")


class RedactingSimpleWorker(_Redacting, SimpleWorker):
    """Jobs in the worker process itself (the default)."""


class RedactingWorker(_Redacting, Worker):
    """One forked work-horse per job (`--fork`)."""


def run(burst: bool = False, fork: bool = False) -> None:
    """Work the fast, default and low queues of the configured Redis, in that priority."""
    from config.queue import QUEUES
    from config.redis import get_redis

    preload()
    worker_class = RedactingWorker if fork else RedactingSimpleWorker
    worker_class(list(QUEUES), connection=get_redis()).work(burst=burst, with_scheduler=True)
