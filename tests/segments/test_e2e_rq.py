"""End to end on RQ: a qualifying timeline event puts the member in the segment, with the rule's tag, by the worker's
per-event re-check (how fast is bench/'s business, not a test's)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from config.database import session_scope
from config.settings import get_settings
from membership.models import Identity, Member, MemberTag, Tag
from membership.service import add_relation, create_store, upsert_staff
from membership.tags import ensure_tag
from membership.timeline import record_event
from segments import service
from segments.rounds import MAX_DEPTH
from segments.models import Segment, SegmentMembership, WecomTagChange

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class FakeWeCom:
    def __init__(self):
        self.calls = []

    def mark_tag(self, userid, external_userid, add_tag=(), remove_tag=()):
        self.calls.append((userid, external_userid, list(add_tag), list(remove_tag)))
        return {"errcode": 0}


@pytest.fixture
def rq_settings(pg_url, redis_url, tmp_path, monkeypatch):
    """Settings on the test PostgreSQL with jobs going to RQ on the test Redis."""
    monkeypatch.setenv("SIYU_DATABASE_URL", pg_url)
    monkeypatch.setenv("SIYU_REDIS_URL", redis_url)
    monkeypatch.setenv("SIYU_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _work() -> None:
    from rq import Queue, SimpleWorker

    from config.redis import get_redis

    redis = get_redis()
    SimpleWorker([Queue(q, connection=redis) for q in ("fast", "default", "low")], connection=redis).work(
        burst=True, logging_level="WARNING")


def test_a_qualifying_event_enters_the_segment_and_tags_through_the_worker_without_a_full_refresh(
        rq_settings, stand_in):
    """Given a segment with a tag rule and an RQ worker, when the member's qualifying event is written,
    then the worker's re-check rounds put them in the segment with the rule's tag (also queued for WeCom),
    with no full refresh."""
    fake = FakeWeCom()
    stand_in(wecom=fake)
    with session_scope() as s:
        store = create_store(s, code="S001", name="一店")
        staff = upsert_staff(s, userid="zhangsan", name="张三", store_id=store.id)
        m = Member(name="顾客")
        s.add(m)
        s.flush()
        s.add(Identity(member_id=m.id, type="wecom_external", scope="corp", value="wmEYE"))
        add_relation(s, staff=staff, member_id=m.id)
        record_event(s, m.id, "booking.completed", {"service": "eye-test"})
        ensure_tag(s, "验光复购", wecom_tag_id="etEYE")
        segment = service.create_segment(s, name="验光两次", definition={"all": [
            {"event": "booking.completed", "count": {"gte": 2}, "within_days": 90, "where": {"service": "eye-test"}},
            {"staff": "zhangsan"}]})
        rule = service.create_tag_rule(s, name="eye", tag="验光复购", segment_id=segment.id)
        member_id, segment_id = m.id, segment.id
    _work()  # the initial refresh: one eye test is not enough yet
    with session_scope() as s:
        refreshed_at = s.get(Segment, segment_id).refreshed_at
        assert s.scalar(select(SegmentMembership).where(SegmentMembership.segment_id == segment_id)) is None

    with session_scope() as s:
        record_event(s, member_id, "booking.completed", {"service": "eye-test"})
    inside = tagged = False
    for _ in range(MAX_DEPTH + 1):  # each burst runs one round of jobs; re-checks settle within MAX_DEPTH rounds
        if inside and tagged:
            break
        _work()
        with session_scope() as s:
            inside = s.get(SegmentMembership, (segment_id, member_id)) is not None
            tagged = s.scalar(select(MemberTag.source).join(Tag, Tag.id == MemberTag.tag_id).where(
                MemberTag.member_id == member_id, Tag.name == "验光复购")) == f"rule:{rule.id}"
    assert inside and tagged
    with session_scope() as s:
        assert s.get(Segment, segment_id).refreshed_at == refreshed_at  # no full refresh ran
        assert [c.status for c in s.scalars(select(WecomTagChange))] == ["done"]
    assert fake.calls == [("zhangsan", "wmEYE", ["etEYE"], [])]
