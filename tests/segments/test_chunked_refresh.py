"""On SQLite a full refresh outside a request commits one chunk of members at a time (its write lock is global)."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from config.database import session_scope
from config.types import utcnow
from membership.models import Member, MemberTag, TimelineEvent
from membership.tags import ensure_tag
from segments import materialise, service
from segments.rounds import DEPTH
from segments.models import Segment, SegmentMembership


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_full_refresh_job_on_sqlite_commits_one_chunk_of_members_at_a_time(settings, drain, monkeypatch):
    # given ten members and a VIP segment; behind its back (no events) seven get the tag and the tenth,
    # untagged, is recorded inside, so only a full refresh can put things right
    with session_scope() as s:
        members = [Member(name=f"m{i}") for i in range(10)]
        s.add_all(members)
        s.flush()
        ids = [m.id for m in members]
    with session_scope() as s:
        sid = service.create_segment(s, name="VIP", definition={"tag": "VIP"}).id
    drain()
    with session_scope() as s:
        vip = ensure_tag(s, "VIP")
        s.add_all([MemberTag(member_id=m, tag_id=vip.id) for m in ids[:7]])
        s.add(SegmentMembership(segment_id=sid, member_id=ids[9], entered_at=utcnow()))
    # and chunks of three members
    monkeypatch.setattr(materialise, "CHUNK", 3)
    monkeypatch.setattr(materialise, "MAX_CHUNK", 3)
    path = make_url(settings.database_url).database
    inside_after_each_commit: list[int] = []

    def committed(session: Session) -> None:
        # the refresh job's own transactions (not a savepoint released inside one)
        if session.info.get(DEPTH) == 1 and not session.in_nested_transaction():
            with sqlite3.connect(path) as conn:  # what any other connection sees now
                inside_after_each_commit.append(conn.execute(
                    "SELECT count(*) FROM segment_membership WHERE segment_id = ?", (sid,)).fetchone()[0])

    event.listen(Session, "after_commit", committed)
    try:
        # when the full refresh job runs
        service.refresh_segment_job(sid)
    finally:
        event.remove(Session, "after_commit", committed)
    drain()
    # then it committed chunk by chunk: others saw the seven arrive three at a time, and the tenth leave
    # only in the last chunk (one transaction would have shown nothing but the end state)
    assert inside_after_each_commit == [1, 4, 7, 8, 7, 7]
    with session_scope() as s:
        assert set(s.scalars(select(SegmentMembership.member_id).where(SegmentMembership.segment_id == sid))) \
            == set(ids[:7])
        segment = s.get(Segment, sid)
        assert (segment.size, segment.last_entered, segment.last_left) == (7, 7, 1)
        assert segment.refreshed_at is not None
        # and each move wrote its event once
        moves = dict(s.execute(select(TimelineEvent.type, func.count()).where(
            TimelineEvent.type.in_(["segment.entered", "segment.left"])).group_by(TimelineEvent.type)).all())
    assert moves == {"segment.entered": 7, "segment.left": 1}
