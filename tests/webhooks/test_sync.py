"""`siyu sync wecom` against a sandbox store chain."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from webhooks.models import SyncCheckpoint
from bot.sandbox.seed import seed_chain
from webhooks.wecom.sync import SyncInterrupted, sync_wecom
from config.database import session_scope
from membership.models import Identity, Member, MemberTag, Relation, Staff, Store, Tag


def _counts():
    with session_scope() as s:
        return {
            "stores": s.scalar(select(func.count()).select_from(Store)),
            "staff": s.scalar(select(func.count()).select_from(Staff)),
            "members": s.scalar(select(func.count()).select_from(Member)),
            "wecom_ids": s.scalar(select(func.count()).select_from(Identity).where(Identity.type == "wecom_external")),
            "unionids": s.scalar(select(func.count()).select_from(Identity).where(Identity.type == "unionid")),
            "relations": s.scalar(select(func.count()).select_from(Relation).where(Relation.status == "active")),
            "tags": s.scalar(select(func.count()).select_from(Tag)),
            "member_tags": s.scalar(select(func.count()).select_from(MemberTag)),
        }


def _expected_member_tags(state) -> int:
    per_member: dict[str, set] = {}
    for follows in state.follows.values():
        for ext, info in follows.items():
            per_member.setdefault(ext, set()).update(info["tag_id"])
    return sum(len(v) for v in per_member.values())


def test_given_a_chain_of_20000_customers_when_synced_twice_then_exact_and_idempotent(sandbox):
    # given: 3 stores, 30 staff, 20,000 customers, every 10th following two staff
    seeded = seed_chain(sandbox, stores=3, staff=30, customers=20000)
    # when
    first = sync_wecom(progress=False)
    # then: exactly those members, relations and tags
    counts = _counts()
    assert counts == {"stores": 3, "staff": 30, "members": 20000, "wecom_ids": 20000, "unionids": 10000,
                      "relations": seeded.follows, "tags": 4, "member_tags": _expected_member_tags(sandbox)}
    assert first.contacts_seen == seeded.follows and first.changes > 0
    with session_scope() as s:
        store_of = dict(s.execute(select(Staff.userid, Store.name).join(Store, Staff.store_id == Store.id)).all())
    assert store_of["staff000"] == "门店1" and store_of["staff001"] == "门店2"
    # when run again
    second = sync_wecom(progress=False)
    # then nothing changes
    assert second.changes == 0, second
    assert _counts() == counts


def test_given_changes_in_wecom_when_synced_then_they_are_reconciled(sandbox):
    # given a synced chain
    seed_chain(sandbox, stores=1, staff=3, customers=30)
    sync_wecom(progress=False)
    # when a relation ends, a tag is removed and a customer appears whose unionid Siyu knows
    sandbox.remove_follow("staff000", "wm00000000")
    sandbox.follows["staff001"]["wm00000001"]["tag_id"] = []
    sandbox.add_external_contact("staff002", external_userid="wmNEW", unionid="union000000")
    report = sync_wecom(progress=False)
    # then
    assert report.relations_ended == 1
    assert report.member_tags_removed > 0
    assert _counts()["member_tags"] == _expected_member_tags(sandbox)
    assert report.members_created == 0  # the unionid joined the existing member
    with session_scope() as s:
        members = s.scalars(select(Identity.member_id).where(Identity.value.in_(["wmNEW", "wm00000000"]))).all()
    assert len(set(members)) == 1
    assert sync_wecom(progress=False).changes == 0


def test_given_an_interrupted_run_when_run_again_then_it_resumes_and_ends_complete(sandbox):
    # given: a run killed after two pages
    seeded = seed_chain(sandbox, stores=1, staff=3, customers=450)
    with pytest.raises(SyncInterrupted):
        sync_wecom(progress=False, stop_after_writes=2, pages_per_commit=1)
    with session_scope() as s:
        assert s.get(SyncCheckpoint, "wecom") is not None
    calls_before = sandbox.calls["externalcontact/batch/get_by_user"]
    # when
    report = sync_wecom(progress=False)
    # then: it continued from the checkpoint and everything is there
    assert report.resumed
    assert sandbox.calls["externalcontact/batch/get_by_user"] - calls_before == 3  # 495 follows, 100 a page
    assert _counts()["relations"] == seeded.follows and _counts()["members"] == 450
    with session_scope() as s:
        assert s.get(SyncCheckpoint, "wecom") is None
    assert sync_wecom(progress=False).changes == 0


def test_a_page_whose_answer_is_lost_is_asked_again_and_the_run_ends_exact(sandbox, caplog):
    # given: 450 customers (5 pages), and the gateway losing the answers of three page reads
    seeded = seed_chain(sandbox, stores=1, staff=3, customers=450)
    sandbox.lose_answer("externalcontact/batch/get_by_user", times=3)
    # when
    report = sync_wecom(progress=False)
    # then: each lost page was asked again, and the run is exact
    assert sandbox.calls["externalcontact/batch/get_by_user"] == 5 + 3
    assert report.contacts_seen == seeded.follows
    assert _counts()["relations"] == seeded.follows and _counts()["members"] == 450
    warned = [r.getMessage() for r in caplog.records if "asking again" in r.getMessage()]
    assert len(warned) == 3 and all("HTTP 504" in w for w in warned)


def test_the_sync_asks_again_only_what_it_reads():
    from bot.transport import RetryPolicy
    from bot.wecom import WeComClient
    from webhooks.wecom.sync import _RetriedReads

    reads = _RetriedReads(WeComClient(creds=object(), contact=None), RetryPolicy(backoff_base=0))
    assert all(callable(getattr(reads, name)) for name in _RetriedReads.READS)
    with pytest.raises(AttributeError, match="reads WeCom only"):
        reads.mark_tag  # noqa: B018 - a write asked again after a lost answer would be made twice


def test_a_page_lost_every_time_ends_the_run_and_the_next_resumes_from_its_checkpoint(sandbox):
    # given: a run that wrote two pages, and every try of the page after them lost
    from bot.errors import TransportError
    from webhooks.wecom.sync import READ_TRIES

    seeded = seed_chain(sandbox, stores=1, staff=3, customers=450)
    with pytest.raises(SyncInterrupted):
        sync_wecom(progress=False, stop_after_writes=2, pages_per_commit=1)
    sandbox.lose_answer("externalcontact/batch/get_by_user", times=READ_TRIES)
    calls_before = sandbox.calls["externalcontact/batch/get_by_user"]
    # when
    with pytest.raises(TransportError):
        sync_wecom(progress=False)
    # then: that page was asked READ_TRIES times, the checkpoint stayed, and the next run resumes and ends complete
    assert sandbox.calls["externalcontact/batch/get_by_user"] - calls_before == READ_TRIES
    with session_scope() as s:
        assert s.get(SyncCheckpoint, "wecom") is not None
    report = sync_wecom(progress=False)
    assert report.resumed
    assert _counts()["relations"] == seeded.follows and _counts()["members"] == 450
    assert sync_wecom(progress=False).changes == 0
