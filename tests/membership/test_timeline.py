"""The timeline: append-only, deduplicated by source, and the traits derived from it kept current."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from membership.exceptions import InvalidInput
from membership.identity import IdentityIn, bind
from membership.models import TimelineEvent
from membership.timeline import record_event, timeline
from membership.traits import get_traits, set_trait

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def member(session):
    return bind(session, [IdentityIn("unionid", "u-1")]).member


def test_derived_traits_follow_the_events(session, member):
    # given events over three days, out of order, including a payment and a refund
    record_event(session, member.id, "booking.completed", {"service": "eye-test"}, at=T0 + timedelta(days=2))
    record_event(session, member.id, "groupbuy.paid", {"amount_fen": 19900}, at=T0 + timedelta(days=1))
    record_event(session, member.id, "booking.completed", {"service": "eye-test"}, at=T0)
    record_event(session, member.id, "groupbuy.refunded", {"amount_fen": 4900}, at=T0 + timedelta(days=3))
    record_event(session, member.id, "segment.entered", {"segment": 1}, at=T0 + timedelta(days=9))
    # then counts, first/last seen and total spend are current
    traits = get_traits(session, member.id)
    assert traits["count.booking.completed"] == 2
    assert traits["last.booking.completed"] == (T0 + timedelta(days=2)).isoformat()
    assert traits["first_seen_at"] == T0.isoformat()
    # a refund and a segment entry are not the customer being seen
    assert traits["last_seen_at"] == (T0 + timedelta(days=2)).isoformat()
    assert traits["total_spent_fen"] == 19900 - 4900


def test_the_same_source_writes_an_event_once(session, member):
    first = record_event(session, member.id, "oa.subscribed", {"scene": "a"}, dedupe_key="inbox:1")
    again = record_event(session, member.id, "oa.subscribed", {"scene": "a"}, dedupe_key="inbox:1")
    assert first is not None and again is None
    assert session.scalar(select(func.count()).select_from(TimelineEvent)) == 1
    assert get_traits(session, member.id)["count.oa.subscribed"] == 1


def test_an_unknown_event_type_is_refused(session, member):
    with pytest.raises(InvalidInput, match="unknown event type"):
        record_event(session, member.id, "contact.teleported")


def test_timeline_is_newest_first_and_pages_back(session, member):
    for day in range(5):
        record_event(session, member.id, "message.received", {"n": day}, at=T0 + timedelta(days=day))
    page = timeline(session, member.id, limit=2)
    assert [e.data["n"] for e in page] == [4, 3]
    older = timeline(session, member.id, limit=10, before=page[-1].at)
    assert [e.data["n"] for e in older] == [2, 1, 0]


def test_traits_are_typed_for_comparison(session, member):
    set_trait(session, member.id, "city", "上海")
    set_trait(session, member.id, "age", 31)
    set_trait(session, member.id, "birthday", datetime(1990, 5, 1, tzinfo=timezone.utc))
    set_trait(session, member.id, "vip", True)
    traits = get_traits(session, member.id)
    assert traits == {"age": 31, "birthday": "1990-05-01T00:00:00+00:00", "city": "上海", "vip": True}
    set_trait(session, member.id, "city", None)
    assert "city" not in get_traits(session, member.id)
