"""Background jobs: after commit only, retried, final failures in `job_failures`, later and once per id; RQ's
real worker on Redis."""
import time as time_module
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from config.database import session_scope
from config.models import JobFailure
from config.queue import InProcessRunner, enqueue, in_process_runner, recording, using
from config.types import utcnow
from config.settings import get_settings
from membership.models import Store
from membership.service import create_store

ATTEMPTS: dict[str, int] = {}


def open_store(code: str) -> None:
    """A job: create a store (fails when the code exists)."""
    with session_scope() as s:
        create_store(s, code=code, name=code)


def flaky(key: str, fail_times: int) -> None:
    """A job that fails `fail_times` times, then creates a store named `key`."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= fail_times:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} of {key} fails")
    open_store(key)


def always_fails(reason: str) -> None:
    """A job that never succeeds."""
    raise RuntimeError(reason)


def _stores() -> set[str]:
    with session_scope() as s:
        return set(s.scalars(select(Store.code)))


@pytest.fixture
def runner(settings):
    r = in_process_runner()
    old = r.retry_scale
    r.retry_scale = 0.01
    ATTEMPTS.clear()
    yield r
    assert r.drain(30)
    r.retry_scale = old


def test_a_job_enqueued_in_a_transaction_runs_only_after_commit(runner):
    # given a job enqueued inside a transaction that then rolls back
    with pytest.raises(ZeroDivisionError):
        with session_scope() as s:
            enqueue(open_store, "ROLLED", session=s)
            raise ZeroDivisionError
    # and one in a transaction that commits
    with session_scope() as s:
        enqueue(open_store, "COMMITTED", session=s)
        # when the transaction is still open, then nothing has been handed to the runner
        assert runner.drain(0.5) and _stores() == set()
    # then only the committed one ran
    assert runner.drain(10)
    assert _stores() == {"COMMITTED"}


def test_a_failing_job_is_retried_until_it_succeeds(runner):
    enqueue(flaky, "FLAKY", 2)
    assert runner.drain(10)
    assert ATTEMPTS["FLAKY"] == 3
    assert _stores() == {"FLAKY"}
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(JobFailure)) == 0


def test_a_job_that_never_succeeds_ends_in_job_failures(runner):
    enqueue(always_fails, "boom", retries=2)
    assert runner.drain(10)
    with session_scope() as s:
        failure = s.scalars(select(JobFailure)).one()
    assert failure.func.endswith("always_fails")
    assert failure.args == ["boom"]
    assert failure.attempts == 3
    assert "RuntimeError: boom" in failure.error


def test_an_unknown_queue_is_refused(settings):
    with pytest.raises(ValueError, match="unknown queue"):
        enqueue(open_store, "X", queue="nope")


@pytest.mark.redis
def test_rq_real_worker_runs_jobs_after_commit_and_records_final_failures(settings, redis_url, monkeypatch):
    from rq import Queue, Worker

    from config.redis import get_redis

    # given Siyu configured with Redis
    monkeypatch.setenv("SIYU_REDIS_URL", redis_url)
    get_settings.cache_clear()
    with session_scope() as s:
        enqueue(open_store, "RQ1", session=s)
        enqueue(open_store, "RQ2", queue="fast", session=s)
    enqueue(always_fails, "rq-boom", retries=0)
    redis = get_redis()
    # then the jobs wait in Redis, not in the process
    assert Queue("default", connection=redis).count == 2 and Queue("fast", connection=redis).count == 1
    assert _stores() == set()
    # when RQ's own (forking) worker drains the queues
    Worker(["fast", "default", "low"], connection=redis).work(burst=True)
    # then the stores exist and the final failure is in the database
    assert _stores() == {"RQ1", "RQ2"}
    with session_scope() as s:
        failure = s.scalars(select(JobFailure)).one()
    assert failure.func.endswith("always_fails") and failure.args == ["rq-boom"]


def test_savepoints_neither_run_nor_drop_after_commit_callbacks(settings):
    from config.database import after_commit

    ran = []
    with session_scope() as s:
        with s.begin_nested():
            after_commit(s, lambda: ran.append("inside released savepoint"))
        # when a savepoint is released, then nothing has run yet
        assert ran == []
        with pytest.raises(ValueError):
            with s.begin_nested():
                raise ValueError
        after_commit(s, lambda: ran.append("after rolled-back savepoint"))
        assert ran == []
    # then the real commit runs every callback, in order
    assert ran == ["inside released savepoint", "after rolled-back savepoint"]


# -- later, and once per id ------------------------------------------------------------------------------
RAN: list[str] = []


def note(what: str) -> None:
    """A job: note that it ran."""
    RAN.append(what)


def note_then_fail(what: str) -> None:
    """A job that notes each attempt and fails."""
    RAN.append(what)
    raise RuntimeError(what)


class ManualTime:
    """A clock and timers that move only when the test says: `advance(seconds)` fires what came due, in order."""

    def __init__(self) -> None:
        self.now = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
        self.timers: list[tuple[datetime, int, Callable]] = []

    def clock(self) -> datetime:
        return self.now

    def call_later(self, delay: float, call: Callable) -> None:
        self.timers.append((self.now + timedelta(seconds=delay), len(self.timers), call))

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        while due := sorted(t for t in self.timers if t[0] <= self.now):
            self.timers.remove(due[0])
            due[0][2]()


@pytest.fixture
def manual(settings):
    """An in-process runner on manual time, receiving every enqueue of the test."""
    time = ManualTime()
    runner = InProcessRunner(clock=time.clock, call_later=time.call_later)
    RAN.clear()
    with using(runner):
        yield time, runner
    assert runner.drain(30)


def test_in_process_a_job_for_later_waits_for_its_time(manual):
    time, runner = manual
    # given a job in 5 minutes and one at 09:10
    enqueue(note, "in 5 minutes", in_=timedelta(minutes=5))
    enqueue(note, "at 09:10", at=time.now + timedelta(minutes=10))
    # then neither runs before its time, and waiting for the runner does not wait for them
    assert runner.drain(5) and RAN == []
    time.advance(299)
    assert runner.drain(5) and RAN == []
    # when their times come, then each runs once, in order
    time.advance(1)
    assert runner.drain(5) and RAN == ["in 5 minutes"]
    time.advance(300)
    assert runner.drain(5) and RAN == ["in 5 minutes", "at 09:10"]


def test_in_process_a_second_enqueue_under_a_pending_id_is_a_no_op_until_the_first_ended(manual):
    time, runner = manual
    # given a job under id hold:7, due in a minute
    enqueue(note, "first", job_id="hold:7", in_=timedelta(minutes=1))
    # when the same id is enqueued again while it waits, then nothing more is queued
    enqueue(note, "second", job_id="hold:7")
    enqueue(note, "other id", job_id="hold:8")
    assert runner.drain(5) and RAN == ["other id"]
    time.advance(60)
    assert runner.drain(5) and RAN == ["other id", "first"]
    # and once it ran, the id may be used again
    enqueue(note, "third", job_id="hold:7")
    assert runner.drain(5) and RAN == ["other id", "first", "third"]


def test_in_process_a_job_waiting_for_its_retry_keeps_its_id(manual):
    time, runner = manual
    # given a job under an id whose first attempt failed (its retry waits 5 seconds)
    enqueue(note_then_fail, "attempt", job_id="once", retries=1)
    assert runner.drain(0.5) is False and RAN == ["attempt"]  # the waiting retry keeps the runner busy
    # when the id is enqueued again meanwhile, then that is a no-op
    enqueue(note, "duplicate", job_id="once")
    time.advance(5)
    assert runner.drain(5) and RAN == ["attempt", "attempt"]
    # and after the final failure the id is free again
    enqueue(note, "after", job_id="once")
    assert runner.drain(5) and RAN == ["attempt", "attempt", "after"]


def test_enqueue_refuses_a_naive_time_and_both_at_and_in(settings):
    with pytest.raises(ValueError, match="aware"):
        enqueue(note, "x", at=datetime(2024, 6, 1, 9, 0))
    with pytest.raises(ValueError, match="not both"):
        enqueue(note, "x", at=utcnow(), in_=timedelta(seconds=1))


def test_the_recording_backend_runs_nothing_and_keeps_what_was_asked_after_commit(settings):
    RAN.clear()
    at = utcnow() + timedelta(hours=1)
    # given jobs enqueued in a transaction that rolls back, in one that commits, and outside any
    with recording() as jobs:
        with pytest.raises(ZeroDivisionError), session_scope() as s:
            enqueue(note, "rolled back", session=s)
            raise ZeroDivisionError
        with session_scope() as s:
            enqueue(note, "committed", queue="low", at=at, job_id="j1", session=s)
            assert jobs == []  # not before the commit
        enqueue(note, "now", queue="fast", retries=0)
        enqueue(note, "later", in_=timedelta(minutes=5))
    # then nothing ran, and the jobs of committed transactions are recorded as asked
    assert RAN == []
    assert [(j.func, j.args, j.queue, j.at, j.in_, j.job_id, j.retries) for j in jobs] == [
        (note, ("committed",), "low", at, None, "j1", 3), (note, ("now",), "fast", None, None, None, 0),
        (note, ("later",), "default", None, timedelta(minutes=5), None, 3)]


@pytest.fixture
def rq(settings, redis_url, monkeypatch):
    """Siyu configured with the test Redis; the RQ queues and their scheduled registries."""
    from rq import Queue

    from config.redis import get_redis

    monkeypatch.setenv("SIYU_REDIS_URL", redis_url)
    get_settings.cache_clear()
    RAN.clear()
    redis = get_redis()
    return redis, {name: Queue(name, connection=redis) for name in ("fast", "default", "low")}


def _work(redis) -> None:
    from rq import SimpleWorker

    SimpleWorker(["fast", "default", "low"], connection=redis).work(burst=True, with_scheduler=True)


@pytest.mark.redis
def test_rq_a_job_for_later_waits_in_the_scheduled_registry_until_its_time(rq):
    redis, queues = rq
    at = utcnow() + timedelta(hours=2)
    # given a job at a time two hours away, and one in an hour on `low`
    enqueue(note, "later", at=at)
    enqueue(note, "in an hour", queue="low", in_=timedelta(hours=1))
    # then neither is queued: RQ's scheduler holds them, at their times
    registry = queues["default"].scheduled_job_registry
    [job_id] = registry.get_job_ids()
    assert queues["default"].count == 0 and queues["low"].count == 0
    assert registry.get_scheduled_time(job_id) == at.replace(microsecond=0)
    # and RQ's scheduler would move it a second before its time: no; at its time: yes
    assert registry.get_jobs_to_schedule(int(at.timestamp()) - 1) == []
    assert registry.get_jobs_to_schedule(int(at.timestamp()) + 1) == [job_id]
    assert len(queues["low"].scheduled_job_registry.get_job_ids()) == 1
    # when a worker with a scheduler runs now, then neither job runs yet
    _work(redis)
    assert RAN == []


@pytest.mark.redis
def test_rq_a_job_whose_time_came_is_run_by_a_worker_with_its_scheduler(rq):
    redis, queues = rq
    enqueue(note, "due", at=utcnow() - timedelta(seconds=1), job_id="due:1")
    assert queues["default"].count == 0
    _work(redis)
    assert RAN == ["due"]


@pytest.mark.redis
def test_rq_a_second_enqueue_under_a_pending_id_is_a_no_op_until_the_first_ended(rq):
    redis, queues = rq
    # given a job queued under id welcome:ABC (not a valid RQ id as it stands) and one scheduled under hold:9
    enqueue(note, "first", job_id="welcome:ABC")
    enqueue(note, "held", job_id="hold:9", in_=timedelta(hours=1))
    # when each id is enqueued again while pending, now or later, then nothing more is queued
    enqueue(note, "second", job_id="welcome:ABC")
    enqueue(note, "second, later", job_id="welcome:ABC", in_=timedelta(minutes=5))
    enqueue(note, "held again", job_id="hold:9")
    assert queues["default"].count == 1 and len(queues["default"].scheduled_job_registry.get_job_ids()) == 1
    _work(redis)
    assert RAN == ["first"]
    # and once the first finished, the id is used again
    enqueue(note, "third", job_id="welcome:ABC")
    _work(redis)
    assert RAN == ["first", "third"]


@pytest.mark.redis
def test_rq_keeps_a_failed_jobs_traceback_in_redis_only_redacted(rq):
    from rq import Queue
    from rq.job import Job

    from siyu.worker import RedactingSimpleWorker

    redis, _ = rq
    secret = "access_token=ACCESSTOKENabcdef0123456789"
    # given a job that fails with a secret and a full phone number in its message, and no retries left
    enqueue(always_fails, f"WeCom said no to {secret} for +8613812345678", retries=0)
    # when Siyu's worker runs it
    RedactingSimpleWorker(["fast", "default", "low"], connection=redis).work(burst=True)
    # then the traceback RQ stored in Redis says what failed, without the token or the phone
    [job_id] = Queue("default", connection=redis).failed_job_registry.get_job_ids()
    stored = Job.fetch(job_id, connection=redis).latest_result().exc_string
    assert "RuntimeError" in stored and "WeCom said no" in stored
    assert "ACCESSTOKENabcdef0123456789" not in stored and "13812345678" not in stored


@pytest.mark.redis
def test_rq_a_named_job_withdrawn_while_queued_never_runs_and_one_already_run_is_not_withdrawn(rq):
    from config.queue import withdraw

    redis, queues = rq
    # given three jobs queued under names, and one without
    for n in (1, 2, 3):
        enqueue(note, f"named {n}", name=f"n-{n}")
    enqueue(note, "unnamed")
    assert queues["default"].count == 4
    # when two of them are withdrawn (and a name nobody used), then those two are dropped, from the queue too
    assert withdraw(["n-1", "n-3", "n-9"]) == 2
    assert queues["default"].count == 2
    # and a worker runs only the others, in their order
    _work(redis)
    assert RAN == ["named 2", "unnamed"]
    # and a job that ran is not withdrawn afterwards (nothing is deleted but queued jobs)
    assert withdraw(["n-2"]) == 0 and withdraw([]) == 0


def test_in_process_a_named_job_withdrawn_while_waiting_for_a_thread_never_runs(settings):
    import threading

    from config.queue import withdraw

    ran, release = [], threading.Event()
    runner = InProcessRunner(workers=1, give_way=0)
    with using(runner):
        # given one thread busy with a job, and three named jobs waiting behind it
        enqueue(lambda: (release.wait(10), ran.append("busy")))
        time_module.sleep(0.1)
        for n in (1, 2, 3):
            enqueue(lambda n=n: ran.append(f"named {n}"), name=f"n-{n}")
        # when two of them are withdrawn (and a name nobody used), then those two are skipped when their turn comes
        assert withdraw(["n-1", "n-3", "n-9"]) == 2
        release.set()
        assert runner.drain(10)
        assert ran == ["busy", "named 2"]
        # and a job that ran is not withdrawn afterwards, nor is a name withdrawn for a later job of that name
        assert withdraw(["n-2"]) == 0
        enqueue(lambda: ran.append("named 2 again"), name="n-2")
        assert runner.drain(10) and ran[-1] == "named 2 again"


def test_a_name_is_for_a_job_due_now_without_a_job_id(settings):
    # a name is a handle, not a second kind of unique id, and names a job in a queue, not one scheduled
    for kwargs in ({"job_id": "x"}, {"in_": timedelta(seconds=5)}, {"at": utcnow()}):
        with pytest.raises(ValueError, match="a name is for a job due now"):
            enqueue(note, "x", name="n-1", **kwargs)
    with pytest.raises(ValueError, match="a name is for"):
        enqueue(note, "x", name="inbox:1")  # not an RQ id


def test_in_process_jobs_give_way_to_answers_in_flight_but_not_for_ever(settings):
    from config.queue import answering

    ran: dict[str, float] = {}
    runner = InProcessRunner(give_way=30)
    start = time_module.monotonic()
    with using(runner):
        with answering():
            # given a callback being answered: a job of the default queue waits, one of the fast queue does not
            enqueue(lambda: ran.setdefault("default", time_module.monotonic()))
            enqueue(lambda: ran.setdefault("fast", time_module.monotonic()), queue="fast")
            time_module.sleep(0.3)
            assert "fast" in ran and "default" not in ran
        # when the answer has been sent, then the waiting job runs at once
        assert runner.drain(5)
    assert ran["default"] - start < 5
    # and under a stream of answers that never pauses, a job waits at most `give_way`
    bounded = InProcessRunner(give_way=0.05)
    with using(bounded), answering():
        enqueue(lambda: ran.setdefault("bounded", time_module.monotonic()))
        assert bounded.drain(5) and "bounded" in ran


@pytest.mark.redis
def test_rq_enqueue_all_queues_the_jobs_due_now_in_one_round_trip_and_says_which_it_could_not(rq, monkeypatch):
    import threading

    from config.queue import RQBackend, enqueue_all, new_job

    redis, queues = rq
    # given jobs due now on two queues, one for later under an id, and one RQ cannot queue (its arguments
    # cannot be pickled)
    jobs = [new_job(note, "event", name="inbox-1-ab"), new_job(note, "welcome", queue="fast"),
            new_job(note, "later", in_=timedelta(minutes=5), job_id="j-later"),
            new_job(note, threading.Lock())]
    executed = []
    real_pipeline = redis.pipeline

    def counted_pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute
        pipe.execute = lambda *a, **k: (executed.append(len(pipe.command_stack)), real_execute(*a, **k))[1]
        return pipe

    monkeypatch.setattr(redis, "pipeline", counted_pipeline)
    # when they are handed over together
    refused = enqueue_all(jobs)
    # then the unpicklable one alone is refused, the others are queued where they belong
    assert [job for job, _ in refused] == [jobs[3]]
    assert queues["default"].count == 1 and queues["fast"].count == 1
    assert queues["default"].scheduled_job_registry.get_job_ids() == ["j-later"]
    # and both jobs due now went in one pipeline (the later one has its own uniqueness check)
    assert len([n for n in executed if n >= 2]) == 1
    _work(redis)
    assert sorted(RAN) == ["event", "welcome"]
    # and with Redis gone nothing is raised: every job is said to be refused
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisUnreachable
    from redis.retry import Retry

    # (no retries: redis-py's default backoff spends ~5 s on each refused connection)
    gone = RQBackend(Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)))
    assert [job for job, _ in gone.dispatch_all(jobs[:2])] == jobs[:2]
    # while one job handed over alone still raises, so its caller knows
    with pytest.raises(RedisUnreachable):
        gone.dispatch(jobs[0])

