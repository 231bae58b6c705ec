"""Background jobs: RQ on Redis when SIYU_REDIS_URL is set, an in-process runner otherwise.

Either way a job runs after the transaction that asked for it commits, never inside the request, now or
at a given time, is retried with backoff, and a final failure is written to `job_failures`. A job given
an id is queued once: another enqueue under that id is a no-op while the first is pending (queued, waiting
for its time or a retry, or running). Tests swap the backend for one that records (`recording()`).

In embedded mode delayed jobs wait in memory: a restart forgets them, so whatever schedules one must be
able to find it again (a sweeper, a reconcile), as it must for a Redis that was flushed.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rq.timeouts import BaseTimeoutException
from sqlalchemy.orm import Session

from config.database import after_commit, session_scope
from config.models import JobFailure
from config.redis import get_redis
from config.types import utcnow

log = logging.getLogger(__name__)

QUEUES = ("fast", "default", "low")  # worker priority order; `fast` carries 20-second welcome codes
RETRY_INTERVALS = (5, 30, 120)  # seconds before the 1st, 2nd and 3rd retry
FAILURE_TTL = 7 * 24 * 3600  # seconds RQ keeps a failed job (the database keeps it for good)
# Raised inside a job that ran past its timeout: work that retries or carries on within the job lets it through.
JOB_TIMEOUT = BaseTimeoutException


def func_name(func: Callable) -> str:
    """`module.function` of a job function."""
    return f"{func.__module__}.{func.__qualname__}"


@dataclass(frozen=True)
class Job:
    """One enqueue: what runs, on which queue, how often it is retried, when, and under which id."""

    func: Callable
    args: tuple = ()
    queue: str = "default"
    retries: int = len(RETRY_INTERVALS)
    at: datetime | None = None  # aware; with `in_` None too: as soon as a worker is free
    in_: timedelta | None = None  # from when the job is handed to the backend (the commit, with a session)
    job_id: str | None = None
    name: str | None = None  # a handle for `withdraw`, not a unique id (make it unique to the job): see `enqueue`


def new_job(func: Callable, *args, queue: str = "default", retries: int = len(RETRY_INTERVALS),
            at: datetime | None = None, in_: timedelta | None = None, job_id: str | None = None,
            name: str | None = None) -> Job:
    """The `Job` that `enqueue` would hand to the backend (the same checks), for `enqueue_all`."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; queues are {QUEUES}")
    if at is not None and in_ is not None:
        raise ValueError("enqueue: give `at` or `in_`, not both")
    if at is not None and at.tzinfo is None:
        raise ValueError(f"enqueue: `at` must be aware, got {at!r}")
    if job_id is not None and not job_id:
        raise ValueError("enqueue: an empty job id")
    if name is not None and (job_id is not None or at is not None or in_ is not None or not RQ_ID.fullmatch(name)):
        raise ValueError(f"enqueue: a name is for a job due now, without a job id, of {RQ_ID.pattern}: {name!r}")
    return Job(func, tuple(args), queue, retries, at, in_, job_id, name)


def enqueue(
    func: Callable,
    *args,
    queue: str = "default",
    session: Session | None = None,
    retries: int = len(RETRY_INTERVALS),
    at: datetime | None = None,
    in_: timedelta | None = None,
    job_id: str | None = None,
    name: str | None = None,
) -> None:
    """Run `func(*args)` in the background: now, at `at` or `in_` from now; with `session`, only once it commits.

    With `job_id`, a second enqueue under the same id is a no-op while the first is pending or running.
    With `name` (no uniqueness, no extra round trip), the job can be withdrawn while it waits (`withdraw`).
    """
    job = new_job(func, *args, queue=queue, retries=retries, at=at, in_=in_, job_id=job_id, name=name)
    if session is not None:
        after_commit(session, lambda: _dispatch(job))
    else:
        _dispatch(job)


def enqueue_all(jobs: list[Job]) -> list[tuple[Job, Exception]]:
    """Hand `jobs` to the backend now, together: on RQ, those due now without an id go in one round trip.

    Each job is queued or refused on its own: the (job, error) pairs of those that were not are returned.
    """
    backend = _backend()
    if hasattr(backend, "dispatch_all"):
        return backend.dispatch_all(jobs)
    return _one_by_one(backend, jobs)


def _one_by_one(backend, jobs: list[Job]) -> list[tuple[Job, Exception]]:
    refused = []
    for job in jobs:
        try:
            backend.dispatch(job)
        except Exception as exc:  # noqa: BLE001 - the caller says what was not queued
            refused.append((job, exc))
    return refused


def withdraw(names: list[str]) -> int:
    """Drop the jobs enqueued under `names` that no worker has taken yet; how many were dropped (best effort).

    For work done by other means: a job applying many inbox events withdraws theirs once it has committed. A
    job already running, waiting for its retry's time or finished is left alone (a retry queued again is not).
    A Redis that cannot be reached withdraws nothing; in embedded mode the in-process runner skips the jobs when
    their turn comes.
    """
    if not names:
        return 0
    backend = _override()
    if backend is not None:
        return backend.withdraw(names) if hasattr(backend, "withdraw") else 0
    redis = get_redis()
    if redis is None:
        return in_process_runner().withdraw(names)
    from rq.job import Job as RQJob

    try:
        return int(redis.eval(_WITHDRAW_QUEUED, len(names), *(RQJob.key_for(n) for n in names)))
    except Exception:  # noqa: BLE001 - the jobs then run and find their work done
        log.warning("withdraw: %d queued jobs left to run (Redis: not reachable)", len(names))
        return 0


_backends: list = []  # backends `using` put in front of the configured one, innermost last
_backends_lock = threading.Lock()


def _override():
    """The backend `using` put in front of the configured one, if any."""
    with _backends_lock:
        return _backends[-1] if _backends else None


def _backend():
    """Where jobs go now: the backend `using` put in front, else RQ when Redis is configured, else in-process."""
    backend = _override()
    if backend is not None:
        return backend
    redis = get_redis()
    return in_process_runner() if redis is None else RQBackend(redis)


def _dispatch(job: Job) -> None:
    _backend().dispatch(job)


@contextlib.contextmanager
def using(backend) -> Iterator:
    """Send every enqueue of every thread to `backend` (anything with `dispatch(job)`) within the block."""
    with _backends_lock:
        _backends.append(backend)
    try:
        yield backend
    finally:
        with _backends_lock:
            _backends.remove(backend)


class Recording:
    """A backend that runs nothing and keeps each job it is handed, in order."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self._lock = threading.Lock()

    def dispatch(self, job: Job) -> None:
        """Keep `job`."""
        with self._lock:
            self.jobs.append(job)


@contextlib.contextmanager
def recording() -> Iterator[list[Job]]:
    """Within the block, jobs are recorded instead of run: yields the list of them (func, args, queue, at, job_id…)."""
    with using(Recording()) as backend:
        yield backend.jobs


def record_failure(name: str, args: list, queue: str, error: str, attempts: int) -> None:
    """Write a final job failure to `job_failures`."""
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


# -- RQ ---------------------------------------------------------------------------------------------------
RQ_ID = re.compile(r"[A-Za-z0-9_-]+")  # what RQ accepts as a job id
# A job id is RQ's job hash key: delete a finished one's record (its result, its failure) so the id can be
# used again, but never a pending or running one. Atomic, so two enqueuers cannot both get past it.
_FORGET_ENDED = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'finished' or status == 'failed' or status == 'stopped' or status == 'canceled' then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


# A withdrawn job's hash is deleted and its id taken out of its queue's list (from the head, where the oldest wait: a
# batch takes the oldest events along), so no worker pops it only to find it gone (two round trips an event); one
# popped meanwhile is skipped by its worker (RQ: no such job).
_WITHDRAW_QUEUED = """
local n = 0
for _, key in ipairs(KEYS) do
    local job = redis.call('HMGET', key, 'status', 'origin')
    if job[1] == 'queued' then
        if job[2] then
            redis.call('LREM', 'rq:queue:' .. job[2], 1, string.sub(key, 8))
        end
        n = n + redis.call('DEL', key)
    end
end
return n
"""


def rq_job_id(job_id: str) -> str:
    """The RQ id of a Siyu job id: itself when RQ accepts it, else a readable form made unique by a digest."""
    if RQ_ID.fullmatch(job_id):
        return job_id
    return re.sub(r"[^A-Za-z0-9_-]", "_", job_id)[:80] + "-" + hashlib.sha256(job_id.encode()).hexdigest()[:16]


class RQBackend:
    """Jobs in RQ on `redis`; a delayed job waits in RQ's scheduled registry for a worker run `with_scheduler`."""

    def __init__(self, redis) -> None:
        self.redis = redis

    def dispatch(self, job: Job) -> None:
        """Queue `job` in RQ (scheduled when it has a time); a no-op when its id is pending or running."""
        from rq import Queue
        from rq.exceptions import DuplicateJobError
        from rq.job import Job as RQJob

        queue = Queue(job.queue, connection=self.redis)
        options = _rq_options(job)
        at = job.at if job.in_ is None else utcnow() + job.in_
        if job.job_id is None:
            if at is None:
                for _, exc in self.dispatch_all([job]):
                    raise exc  # as before: the caller learns that its job was not queued
            else:
                queue.enqueue_at(at, job.func, *job.args, **options)
            return
        rq_id = rq_job_id(job.job_id)
        self.redis.eval(_FORGET_ENDED, 1, RQJob.key_for(rq_id))
        rq_job = queue.create_job(job.func, args=job.args, job_id=rq_id, **options)
        try:
            if at is None:
                queue.enqueue_job(rq_job, unique=True)
            else:
                queue.schedule_job(rq_job, at, unique=True)
        except DuplicateJobError:
            log.info("job %s: %s is pending already, not queued again", func_name(job.func), job.job_id)


    def dispatch_all(self, jobs: list[Job]) -> list[tuple[Job, Exception]]:
        """Queue `jobs`: those due now without an id in one pipeline (one round trip), the others one by one."""
        from rq import Queue

        now, later = [], []
        for job in jobs:
            (now if job.job_id is None and job.at is None and job.in_ is None else later).append(job)
        refused = _one_by_one(self, later)
        pipe, queued = self.redis.pipeline(), []
        for job in now:
            try:
                Queue(job.queue, connection=self.redis).enqueue(job.func, *job.args, pipeline=pipe, job_id=job.name,
                                                                **_rq_options(job))
                queued.append(job)
            except Exception as exc:  # noqa: BLE001 - this one is refused, the others go
                refused.append((job, exc))
        if queued:
            try:
                pipe.execute()
            except Exception as exc:  # noqa: BLE001 - none of the pipeline's went
                refused.extend((job, exc) for job in queued)
        return refused


def _rq_options(job: Job) -> dict:
    from rq import Callback, Retry

    return {"retry": Retry(max=job.retries, interval=list(RETRY_INTERVALS[:job.retries])) if job.retries else None,
            "on_failure": Callback(rq_failure_callback), "failure_ttl": FAILURE_TTL}


# -- in-process -------------------------------------------------------------------------------------------
def _thread_timer(delay: float, call: Callable[[], None]) -> None:
    timer = threading.Timer(delay, call)
    timer.daemon = True
    timer.start()


class _Answering:
    """Requests someone waits on (Tencent gives a callback 5 s): the in-process jobs, in the same interpreter, give
    way to them for a moment before each job, so a backlog being worked through does not slow the answers."""

    def __init__(self) -> None:
        self._n = 0
        self._quiet = threading.Condition()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        with self._quiet:
            self._n += 1
        try:
            yield
        finally:
            with self._quiet:
                self._n -= 1
                if self._n == 0:
                    self._quiet.notify_all()

    def give_way(self, at_most: float) -> None:
        """Wait until no request is being answered, or `at_most` seconds (so jobs go on under a steady stream)."""
        with self._quiet:
            self._quiet.wait_for(lambda: self._n == 0, at_most)


ANSWERING = _Answering()
answering = ANSWERING.answering  # with answering(): … marks a request the in-process jobs give way to


@dataclass
class InProcessRunner:
    """Embedded mode's queue: worker threads in the server process; delays and retries on timers.

    `clock` (aware now) and `call_later(seconds, call)` are injectable, so tests move time by hand.
    """

    workers: int = 2
    retry_scale: float = 1.0  # tests shrink the backoff
    give_way: float = 0.05  # seconds a job (not one of the fast queue's) waits for answers in flight to be sent
    clock: Callable[[], datetime] = utcnow
    call_later: Callable[[float, Callable[[], None]], object] = _thread_timer
    _pool: ThreadPoolExecutor = field(init=False)
    _fast: ThreadPoolExecutor = field(init=False)
    _pending: int = 0  # queued, running or waiting for a retry (not: waiting for a later time)
    _ids: set[str] = field(default_factory=set)  # ids of jobs pending or running
    _queued: set[str] = field(default_factory=set)  # names of jobs waiting for a thread
    _withdrawn: set[str] = field(default_factory=set)  # names among those to skip when their turn comes
    _idle: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="siyu-job")
        self._fast = ThreadPoolExecutor(1, thread_name_prefix="siyu-fast")

    def dispatch(self, job: Job) -> bool:
        """Run `job` when it is due; False (nothing queued) while another job with its id is pending or running."""
        if job.job_id is not None:
            with self._idle:
                if job.job_id in self._ids:
                    log.info("job %s: %s is pending already, not queued again", func_name(job.func), job.job_id)
                    return False
                self._ids.add(job.job_id)
        if job.in_ is not None:
            delay = job.in_.total_seconds()
        else:
            delay = (job.at - self.clock()).total_seconds() if job.at is not None else 0
        if delay > 0:
            self.call_later(delay, lambda: self._submit(job, 1))
        else:
            self._submit(job, 1)
        return True

    def _submit(self, job: Job, attempt: int) -> None:
        with self._idle:
            self._pending += 1
            if job.name is not None:
                self._queued.add(job.name)
        pool = self._fast if job.queue == "fast" else self._pool
        pool.submit(self._run, job, attempt)

    def withdraw(self, names: list[str]) -> int:
        """Skip the jobs named `names` that wait for a thread (see `withdraw`); how many there were."""
        with self._idle:
            found = [name for name in names if name in self._queued]
            self._withdrawn.update(found)
        return len(found)

    def _skipped(self, job: Job) -> bool:
        if job.name is None:
            return False
        with self._idle:
            self._queued.discard(job.name)
            if job.name not in self._withdrawn:
                return False
            self._withdrawn.discard(job.name)
            return True

    def _run(self, job: Job, attempt: int) -> None:
        ended = True
        if self._skipped(job):
            self._done(job.job_id)
            return
        if job.queue != "fast":  # the fast queue's welcome codes have 20 seconds
            ANSWERING.give_way(self.give_way)
        try:
            job.func(*job.args)
        except Exception as exc:
            if attempt <= job.retries:
                ended = False
                delay = RETRY_INTERVALS[min(attempt, len(RETRY_INTERVALS)) - 1] * self.retry_scale
                log.warning("job %s: attempt %d failed (%s), retrying in %.1fs", func_name(job.func), attempt, exc,
                            delay)
                with self._idle:
                    self._pending += 1  # the timer keeps the runner busy until the retry is queued
                self.call_later(delay, lambda: self._retry(job, attempt + 1))
            else:
                record_failure(func_name(job.func), list(job.args), job.queue, traceback.format_exc(), attempt)
        finally:
            self._done(job.job_id if ended else None)

    def _retry(self, job: Job, attempt: int) -> None:
        self._submit(job, attempt)
        self._done(None)

    def _done(self, job_id: str | None) -> None:
        with self._idle:
            self._ids.discard(job_id)
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def drain(self, timeout: float | None = 30.0) -> bool:
        """Wait until no job is queued, running or waiting to retry (jobs due later do not count); False on timeout."""
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
