"""Jobs of the segments package that only schedules enqueue (RQ or in-process): take ids, safe to run twice.

Jobs that other modules enqueue live with them: re-checks in `listeners`, refreshes and rule back-fills in
`service`, the WeCom tag mirror in `wecom_tags`. Nothing imports this module but `segments.scheduled`.
"""
from __future__ import annotations

from sqlalchemy import select

from config.database import session_scope
from config.queue import enqueue
from segments import failures
from segments.models import Segment
from segments.service import refresh_segment_job


def _refreshable(query):
    # A segment recorded as unevaluable waits for a redefinition instead of failing again every night.
    return query.where(Segment.refresh_error.is_(None))


def refresh_relative_segments() -> int:
    """At the start of a business day: refresh every segment whose conditions move with the date."""
    with failures.translated(), session_scope() as session:
        ids = list(session.scalars(_refreshable(select(Segment.id).where(Segment.relative_dates))))
    for sid in ids:
        enqueue(refresh_segment_job, sid, queue="low")
    return len(ids)


def refresh_all_segments() -> int:
    """Refresh every segment (catches changes that write no event, such as a home store edited in SQL)."""
    with failures.translated(), session_scope() as session:
        ids = list(session.scalars(_refreshable(select(Segment.id))))
    for sid in ids:
        enqueue(refresh_segment_job, sid, queue="low")
    return len(ids)
