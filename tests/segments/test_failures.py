"""Evaluations that fail: recorded once when no retry can help, and never with SQL or its parameters."""
from __future__ import annotations

import logging
import sqlite3

import psycopg.errors
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from config.database import get_engine, session_scope
from config.models import JobFailure
from config.queue import enqueue, in_process_runner
from membership.models import Member
from membership.tags import ensure_tag, tag_member
from segments import jobs, listeners, materialise, service
from segments.models import Segment, SegmentMembership

PHONE = "13812345678"
WITH_PHONE = {"all": [{"trait": "phone", "op": "eq", "value": PHONE}, {"tag": "VIP"}, {"not": {"store": "S9"}}]}


def _legacy_segments() -> tuple[int, int]:
    """A VIP segment, and one saved before the expansion cap: 4 levels × 10 references (11,111 nodes inlined)."""
    with session_scope() as s:
        vip = Segment(name="VIP", definition={"tag": "VIP"}, depends_on=["tag:VIP"])
        s.add(vip)
        s.flush()
        sid = vip.id
        for level in range(4):
            seg = Segment(name=f"level {level}", definition={"any": [{"segment": sid}] * 10}, depends_on=["tag:VIP"])
            s.add(seg)
            s.flush()
            sid = seg.id
        return vip.id, sid


def _failures() -> list[JobFailure]:
    with session_scope() as s:
        return list(s.scalars(select(JobFailure)))


def test_an_unevaluable_segment_is_recorded_once_and_not_retried(client, drain, caplog):
    """Given a stored definition past the expansion cap, when refreshed (twice), scheduled and re-checked, then
    its error is recorded once, no job fails or retries, the nightly refresh leaves it out, and re-checks of
    other segments go on."""
    # given
    vip, legacy = _legacy_segments()
    with session_scope() as s:
        member = Member(name="m")
        s.add(member)
        s.flush()
        member_id = member.id
    caplog.set_level(logging.WARNING)
    # when refreshed twice
    service.refresh_segment_job(legacy)
    service.refresh_segment_job(legacy)
    # then the reason is recorded, and logged, once
    with session_scope() as s:
        error = s.get(Segment, legacy).refresh_error
    assert "MAX_EXPANDED_NODES" in error
    assert sum("cannot be evaluated" in r.getMessage() for r in caplog.records) == 1
    assert client.get(f"/api/v1/segments/{legacy}").json()["refresh_error"] == error
    r = client.post(f"/api/v1/segments/{legacy}/refresh")
    assert r.status_code == 422 and "MAX_EXPANDED_NODES" in r.json()["detail"], r.text
    # when the nightly refresh runs, then it leaves the segment out
    assert jobs.refresh_all_segments() == 4
    drain()
    # when a member becomes VIP, then the per-event re-check still moves them into the VIP segment
    with session_scope() as s:
        tag_member(s, member_id, ensure_tag(s, "VIP"))
    drain()
    with session_scope() as s:
        assert s.get(SegmentMembership, (vip, member_id)) is not None
    assert _failures() == []
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def _limits(dbapi_conn, _record) -> None:
    # A real SQLite refusal: the refresh statement needs more variables than this.
    dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 4)


def _raising(orig: Exception):
    """A stand-in for a statement that fails as SQLAlchemy reports it: with the SQL and its parameters."""
    def fail(*args, **kwargs):
        raise OperationalError(f"SELECT members.id FROM members WHERE traits.text_value = '{PHONE}'",
                               {"text_value_1": PHONE}, orig)
    return fail


def _saved(definition: dict) -> int:
    with session_scope() as s:
        seg = Segment(name="phone", definition=definition, depends_on=["tag:VIP"])
        s.add(seg)
        s.flush()
        return seg.id


def test_a_statement_the_database_refuses_as_too_large_is_recorded_without_its_sql(settings, monkeypatch, caplog):
    """Given a definition with a phone number whose statement the database refuses for its size, when refreshed,
    then the job returns, and the recorded error and the log name the refusal without the SQL or the phone."""
    # given (SQLite: a real limit; PostgreSQL: its program_limit_exceeded error, raised where the statement runs)
    sid = _saved(WITH_PHONE)
    engine = get_engine()
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _limits)
        engine.dispose()  # pooled connections were made without the limit
    else:  # the set evaluator streams from psycopg's own cursor: its errors arrive unwrapped
        def refuse(*args, **kwargs):
            raise psycopg.errors.StatementTooComplex(f"stack depth limit exceeded\nHINT: '{PHONE}'")
        monkeypatch.setattr(materialise, "matching_bitmap", refuse)
    caplog.set_level(logging.INFO)
    # when
    try:
        service.refresh_segment_job(sid)
    finally:
        if engine.dialect.name == "sqlite":
            event.remove(engine, "connect", _limits)
            engine.dispose()
    # then
    with session_scope() as s:
        error = s.get(Segment, sid).refresh_error
    assert "too large" in error and ("too many SQL variables" in error or "54001" in error), error
    for text in (error, caplog.text):
        assert PHONE not in text and "SELECT" not in text and "[SQL:" not in text
    assert _failures() == []


@pytest.mark.parametrize("job", ["refresh", "recheck"])
def test_a_database_error_that_a_retry_may_fix_is_retried_and_recorded_without_its_sql(settings, drain, monkeypatch,
                                                                                        caplog, job):
    """Given database errors carrying SQL and a phone number, when a segments job keeps failing, then the queue
    retries it and records the failure, and neither its log lines nor the stored error hold the SQL or the phone."""
    # given
    sid = _saved({"tag": "VIP"})
    orig = (sqlite3.OperationalError("database is locked") if get_engine().dialect.name == "sqlite"
            else psycopg.errors.DeadlockDetected(f"deadlock detected\nDETAIL: waiting for {PHONE}"))
    monkeypatch.setattr(materialise, "apply_diff", _raising(orig))
    monkeypatch.setattr(materialise, "apply_ids", _raising(orig))
    monkeypatch.setattr(materialise, "load_states", _raising(orig))
    monkeypatch.setattr(in_process_runner(), "retry_scale", 0.001)
    caplog.set_level(logging.INFO)
    with session_scope() as s:
        member = Member(name="m")
        s.add(member)
        s.flush()
        member_id = member.id
    # when
    if job == "refresh":
        enqueue(service.refresh_segment_job, sid)
    else:
        enqueue(listeners.recheck_members_job, {str(member_id): ["tag:VIP"]})
    drain()
    # then
    (failure,) = _failures()
    assert failure.attempts == 4 and ("database is locked" in failure.error or "deadlock detected" in failure.error)
    assert [r for r in caplog.records if "retrying" in r.getMessage()]
    for text in (failure.error, caplog.text):
        assert PHONE not in text and "SELECT" not in text and "[SQL:" not in text and "parameters" not in text
    with session_scope() as s:
        assert s.get(Segment, sid).refresh_error is None  # a retry may fix it: nothing is recorded as permanent
