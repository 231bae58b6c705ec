"""Subscribe-message grants: taken one per send, never below zero, never twice under concurrency, kept by merges."""
from __future__ import annotations

import threading

from config.database import engine_for, session_scope
from membership import consents
from membership.identity import IdentityIn, bind


def _member(session, value: str) -> int:
    return bind(session, [IdentityIn("unionid", value)]).member.id


def test_each_accepted_popup_allows_one_message(session):
    # given a member who accepted the reminder template twice
    mid = _member(session, "u1")
    assert consents.grant(session, member_id=mid, template_id="TPL", count=1) == 1
    assert consents.grant(session, member_id=mid, template_id="TPL") == 2
    # when three sends try to take a grant, then two may send and the third may not
    assert [consents.consume(session, member_id=mid, template_id="TPL") for _ in range(3)] == [True, True, False]
    assert consents.remaining(session, member_id=mid, template_id="TPL") == 0
    # and another template was never granted at all
    assert consents.consume(session, member_id=mid, template_id="OTHER") is False


def test_a_refused_send_gives_its_grant_back(session):
    mid = _member(session, "u2")
    consents.grant(session, member_id=mid, template_id="TPL")
    assert consents.consume(session, member_id=mid, template_id="TPL")
    consents.release(session, member_id=mid, template_id="TPL")
    assert consents.remaining(session, member_id=mid, template_id="TPL") == 1


def test_a_merge_keeps_what_both_records_were_granted(session):
    from membership.merge import merge_members
    from membership.models import Member

    a, b = _member(session, "ua"), _member(session, "ub")
    consents.grant(session, member_id=a, template_id="TPL")
    consents.grant(session, member_id=b, template_id="TPL", count=2)
    consents.grant(session, member_id=b, template_id="ONLY_B")
    assert merge_members(session, session.get(Member, a), session.get(Member, b), reason="test")
    assert consents.remaining(session, member_id=a, template_id="TPL") == 3
    assert consents.remaining(session, member_id=a, template_id="ONLY_B") == 1
    assert consents.remaining(session, member_id=b, template_id="TPL") == 0


def test_twenty_concurrent_senders_use_three_grants_exactly_three_times(pg_url, monkeypatch):
    from config.settings import get_settings

    monkeypatch.setenv("SIYU_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    engine = engine_for(pg_url)
    with session_scope(engine) as s:
        mid = _member(s, "u-race")
        consents.grant(s, member_id=mid, template_id="TPL", count=3)
    barrier, taken = threading.Barrier(20), []

    def send():
        barrier.wait()
        with session_scope(engine) as s:
            taken.append(consents.consume(s, member_id=mid, template_id="TPL"))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(taken) == [False] * 17 + [True] * 3
    with session_scope(engine) as s:
        assert consents.remaining(s, member_id=mid, template_id="TPL") == 0
    get_settings.cache_clear()
