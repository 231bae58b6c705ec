"""Background jobs: after commit only, retried, final failures in `job_failures`; RQ's real worker on Redis."""
import pytest
from sqlalchemy import func, select

from config.database import session_scope
from config.models import JobFailure
from config.queue import enqueue, in_process_runner
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
