"""Identity: one person, one member — binding, merging, the phone rule, and concurrent binders."""
import threading

import pytest
from sqlalchemy import func, select

from config.database import engine_for, session_scope
from membership.identity import IdentityIn, bind, resolve
from membership.models import Identity, Member, MergeReview, Relation, TimelineEvent
from membership.service import add_relation, create_store, upsert_staff
from membership.tags import ensure_tag, member_tags, tag_member
from membership.timeline import record_event
from membership.traits import get_traits, set_trait

CORP, OA, MP = "wwcorp", "wxoa", "wxmp"


def ext(v):
    return IdentityIn("wecom_external", v, CORP)


def oa(v):
    return IdentityIn("oa_openid", v, OA)


def union(v):
    return IdentityIn("unionid", v)


def phone(v, verified=True):
    return IdentityIn("phone", v, verified=verified)


def test_oa_openid_and_wecom_contact_sharing_a_unionid_are_one_member(session):
    # given an official-account follower known by openid and unionid
    follower = bind(session, [oa("o-1"), union("u-1")]).member
    # when the same person is added on WeCom, the contact carrying the same unionid
    contact = bind(session, [ext("wm-1"), union("u-1")])
    # then they are one member holding all three identities
    assert contact.member.id == follower.id and not contact.created
    types = set(session.scalars(select(Identity.type).where(Identity.member_id == follower.id)))
    assert types == {"oa_openid", "unionid", "wecom_external"}
    assert session.scalar(select(func.count()).select_from(Member)) == 1
    assert resolve(session, ext("wm-1")).id == follower.id


def test_binding_the_same_identities_twice_changes_nothing(session):
    first = bind(session, [ext("wm-1"), union("u-1")])
    again = bind(session, [ext("wm-1"), union("u-1")])
    assert first.created and not again.created and again.member.id == first.member.id
    assert again.new_identities == []
    assert session.scalar(select(func.count()).select_from(Identity)) == 2


def test_a_unionid_that_proves_two_members_one_merges_them_into_the_older(session):
    # given two members made separately: a WeCom contact (older) and an OA follower, each with history
    store = create_store(session, code="S1", name="静安店")
    staff = upsert_staff(session, userid="zhangsan", name="张三", store_id=store.id)
    older = bind(session, [ext("wm-1")], name="李四").member
    newer = bind(session, [oa("o-1")], store_id=store.id).member
    add_relation(session, staff=staff, member_id=newer.id, state="qr1")
    tag_member(session, newer.id, ensure_tag(session, "VIP"))
    record_event(session, newer.id, "oa.subscribed", {"scene": "qr"})
    set_trait(session, newer.id, "city", "上海")
    # when the OA follower's unionid turns out to be the WeCom contact's too
    result = bind(session, [ext("wm-1"), oa("o-1"), union("u-1")])
    # then the older member survives and holds everything
    assert result.member.id == older.id and result.merged == [newer.id]
    session.refresh(newer)
    assert newer.merged_into_id == older.id
    assert set(session.scalars(select(Identity.member_id))) == {older.id}
    assert [t.name for t in member_tags(session, older.id)] == ["VIP"]
    assert session.scalar(select(Relation.member_id)) == older.id
    types = set(session.scalars(select(TimelineEvent.type).where(TimelineEvent.member_id == older.id)))
    assert {"oa.subscribed", "contact.added", "tag.added", "member.merged"} <= types
    left = select(func.count()).select_from(TimelineEvent).where(TimelineEvent.member_id == newer.id)
    assert session.scalar(left) == 0
    traits = get_traits(session, older.id)
    assert traits["city"] == "上海" and traits["count.oa.subscribed"] == 1
    assert result.member.store_id == store.id and result.member.name == "李四"
    # and the merged member's old identities resolve to the survivor
    assert resolve(session, oa("o-1")).id == older.id


def test_a_merge_keeps_one_relation_per_staff_member(session):
    store = create_store(session, code="S1", name="店")
    staff = upsert_staff(session, userid="zhangsan", name="张三", store_id=store.id)
    a = bind(session, [ext("wm-a")]).member
    b = bind(session, [oa("o-b")]).member
    add_relation(session, staff=staff, member_id=a.id)
    add_relation(session, staff=staff, member_id=b.id)
    bind(session, [ext("wm-a"), oa("o-b")])
    rows = session.scalars(select(Relation)).all()
    assert len(rows) == 1 and rows[0].member_id == a.id and rows[0].status == "active"


def test_two_members_with_different_verified_phones_are_not_merged(session):
    # given two members, each with its own verified phone
    a = bind(session, [ext("wm-a"), phone("13800138000")]).member
    b = bind(session, [oa("o-b"), phone("13900139000")]).member
    # when an identity set claims both are one person
    result = bind(session, [ext("wm-a"), oa("o-b")])
    # then nothing is merged and the pair waits for a person to review it
    session.refresh(b)
    assert b.merged_into_id is None and result.merged == []
    review = session.scalars(select(MergeReview)).one()
    assert {review.member_id, review.other_member_id} == {a.id, b.id}
    assert session.scalar(select(Identity.member_id).where(Identity.type == "oa_openid")) == b.id


def test_an_unverified_phone_links_nobody(session):
    a = bind(session, [ext("wm-a"), phone("13800138000", verified=False)]).member
    b = bind(session, [oa("o-b"), phone("+86 138 0013 8000", verified=False)]).member
    assert a.id != b.id
    # the phone stays with its first claimant
    assert session.scalar(select(Identity.member_id).where(Identity.type == "phone")) == a.id


def test_a_verified_phone_joins_the_member_holding_it_and_is_stored_in_e164(session):
    a = bind(session, [ext("wm-a"), phone("138-0013-8000")]).member
    b = bind(session, [oa("o-b"), phone("+8613800138000")])
    assert b.member.id == a.id
    assert session.scalar(select(Identity.value).where(Identity.type == "phone")) == "+8613800138000"
    assert session.scalar(select(func.count()).select_from(TimelineEvent)
                          .where(TimelineEvent.type == "member.phone_bound")) == 1


@pytest.mark.postgres
def test_twenty_threads_binding_the_same_new_unionid_create_exactly_one_member(pg_url, monkeypatch):
    from config.settings import get_settings

    monkeypatch.setenv("SIYU_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    engine = engine_for(pg_url)
    barrier = threading.Barrier(20)
    ids, errors = [], []

    def worker(i):
        try:
            barrier.wait()
            with session_scope(engine) as s:
                ids.append(bind(s, [union("u-race"), ext(f"wm-{i}")]).member.id)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    # when 20 threads bind the same new unionid at once, each with its own WeCom contact
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    get_settings.cache_clear()
    # then every thread got the one member, which holds all 21 identities
    assert errors == []
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(Member)) == 1
        assert set(ids) == {s.scalar(select(Member.id))}
        assert s.scalar(select(func.count()).select_from(Identity)) == 21


def _joined_the_first(session, result, first_id: int) -> None:
    # the new member the bind began was taken back with its identities, and the contact joined the first member
    assert result.member.id == first_id and not result.created
    assert session.scalar(select(func.count()).select_from(Member)) == 1
    held = dict(session.execute(select(Identity.value, Identity.member_id)).all())
    assert held == {"u-late": first_id, "o-first": first_id, "wm-late": first_id}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_new_member_whose_identity_another_binder_stored_first_is_taken_back_and_joins_theirs(session,
                                                                                                monkeypatch):
    import membership.identity as identity

    # given the unionid already bound (by a binder that committed after this one looked and found nothing)
    first = bind(session, [union("u-late"), oa("o-first")]).member
    looked = []
    real = identity._existing

    def stale_once(s, wanted):
        looked.append(len(looked))
        return {} if len(looked) == 1 else real(s, wanted)

    monkeypatch.setattr(identity, "_existing", stale_once)
    # when a contact sharing that unionid is bound
    result = bind(session, [ext("wm-late"), union("u-late")])
    # then it looked again after taking back what it began
    assert len(looked) == 2
    _joined_the_first(session, result, first.id)


@pytest.mark.postgres
def test_on_postgresql_a_binder_waiting_for_one_that_stores_its_identity_first_joins_theirs(pg_url, monkeypatch,
                                                                                           caplog):
    import logging

    from config.settings import get_settings

    caplog.set_level(logging.INFO, logger="membership.identity")

    monkeypatch.setenv("SIYU_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    engine = engine_for(pg_url)
    stored, release = threading.Event(), threading.Event()
    first = {}

    def first_binder():
        with session_scope(engine) as s:
            first["id"] = bind(s, [union("u-late"), oa("o-first")]).member.id
            stored.set()
            release.wait(10)  # commits only once the second binder's statement has started

    # given a binder that has stored the unionid and not committed yet
    t = threading.Thread(target=first_binder)
    t.start()
    assert stored.wait(10)
    try:
        with session_scope(engine) as s:
            # when a contact sharing that unionid is bound meanwhile (its look-up cannot see the uncommitted row; its
            # insert waits for it) and the first binder commits
            threading.Timer(0.3, release.set).start()
            result = bind(s, [ext("wm-late"), union("u-late")])
            # then it took back the member it began and joined the first binder's
            assert "a concurrent binder stored one of these identities" in caplog.text
            _joined_the_first(s, result, first["id"])
    finally:
        release.set()
        t.join()
        get_settings.cache_clear()


def test_a_new_member_is_bound_without_a_savepoint_and_a_known_one_with_one(session):
    from sqlalchemy import event

    statements = []
    listener = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listener)
    try:
        created = bind(session, [ext("wm-new"), union("u-new")])
        fresh = [s for s in statements if "SAVEPOINT" in s]
        statements.clear()
        again = bind(session, [ext("wm-new"), union("u-new"), oa("o-new")])
        known = [s for s in statements if "SAVEPOINT" in s]
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert created.created and fresh == []
    assert again.member.id == created.member.id and not again.created and known
