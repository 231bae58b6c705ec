"""Background jobs: RQ on Redis when SIYU_REDIS_URL is set, an in-process runner otherwise.

Either way a job runs after the transaction that asked for it commits, never inside the request,
is retried with backoff, and a final failure is written to `job_failures`.
"""
from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from config.database import after_commit, session_scope
from config.redis import get_redis

log = logging.getLogger(__name__)

QUEUES = ("fast", "default", "low")  # worker priority order; `fast` carries 20-second welcome codes
RETRY_INTERVALS = (5, 30, 120)  # seconds before the 1st, 2nd and 3rd retry


def func_name(func: Callable) -> str:
    """`module.function` of a job function."""
    return f"{func.__module__}.{func.__qualname__}"


def enqueue(
    func: Callable,
    *args,
    queue: str = "default",
    session: Session | None = None,
    retries: int = len(RETRY_INTERVALS),
) -> None:
    """Run `func(*args)` in the background; with `session`, only once that session commits."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; queues are {QUEUES}")
    if session is not None:
        after_commit(session, lambda: _dispatch(func, args, queue, retries))
    else:
        _dispatch(func, args, queue, retries)


def _dispatch(func: Callable, args: tuple, queue: str, retries: int) -> None:
    redis = get_redis()
    if redis is None:
        in_process_runner().submit(func, args, queue, retries)
        return
    from rq import Callback, Queue, Retry

    Queue(queue, connection=redis).enqueue(
        func,
        *args,
        retry=Retry(max=retries, interval=list(RETRY_INTERVALS[:retries])) if retries else None,
        on_failure=Callback(rq_failure_callback),
        failure_ttl=7 * 24 * 3600,
    )


def record_failure(name: str, args: list, queue: str, error: str, attempts: int) -> None:
    """Write a final job failure to `job_failures`."""
    from config.models import JobFailure

    log.error("job %s%r: failed for good after %d attempts: %s", name, tuple(args), attempts, error.splitlines()[-1:])
    try:
        with session_scope() as session:
            session.add(JobFailure(func=name, args=list(args), queue=queue, error=error[-8000:], attempts=attempts))
    except Exception:
        log.exception("job %s: could not record its failure", name)


def rq_failure_callback(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback: record the failure once no retry is left."""
    if job.retries_left:  # RQ will try again
        return
    attempts = 1 + len(job.retry_intervals or [])
    error = "".join(traceback.format_exception(exc_type, exc_value, tb))
    record_failure(job.func_name, list(job.args), job.origin, error, attempts)


@dataclass
class InProcessRunner:
    """Embedded mode's queue: worker threads in the server process, retries on timers."""

    workers: int = 2
    retry_scale: float = 1.0  # tests shrink the backoff
    _pool: ThreadPoolExecutor = field(init=False)
    _fast: ThreadPoolExecutor = field(init=False)
    _pending: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="siyu-job")
        self._fast = ThreadPoolExecutor(1, thread_name_prefix="siyu-fast")

    def submit(self, func: Callable, args: tuple, queue: str, retries: int, attempt: int = 1) -> None:
        """Queue one attempt of `func(*args)`."""
        with self._idle:
            self._pending += 1
        pool = self._fast if queue == "fast" else self._pool
        pool.submit(self._run, func, args, queue, retries, attempt)

    def _run(self, func: Callable, args: tuple, queue: str, retries: int, attempt: int) -> None:
        try:
            func(*args)
        except Exception as exc:
            if attempt <= retries:
                delay = RETRY_INTERVALS[min(attempt, len(RETRY_INTERVALS)) - 1] * self.retry_scale
                log.warning("job %s: attempt %d failed (%s), retrying in %.1fs", func_name(func), attempt, exc, delay)
                with self._idle:
                    self._pending += 1  # the timer keeps the runner busy until the retry is queued
                timer = threading.Timer(delay, self._retry, (func, args, queue, retries, attempt + 1))
                timer.daemon = True
                timer.start()
            else:
                record_failure(func_name(func), list(args), queue, traceback.format_exc(), attempt)
        finally:
            self._done()

    def _retry(self, func, args, queue, retries, attempt) -> None:
        self.submit(func, args, queue, retries, attempt)
        self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until no job is queued, running or waiting to retry; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)


_runner: InProcessRunner | None = None
_runner_lock = threading.Lock()


def in_process_runner() -> InProcessRunner:
    """The process-wide in-process runner (created on first use)."""
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = InProcessRunner()
        return _runner
