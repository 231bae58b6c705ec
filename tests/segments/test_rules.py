"""Auto-tagging rules: segment entry and keywords put tags on, attributed to the rule; WeCom mirrors them."""
from __future__ import annotations

from sqlalchemy import select

from config.database import session_scope
from membership.models import Identity, Member, MemberTag, Tag
from membership.service import add_relation, create_store, upsert_staff
from membership.tags import ensure_tag, tag_member, untag_member
from membership.timeline import record_event
from segments import service, wecom_tags
from segments.models import WecomTagChange


class FakeWeCom:
    """Stands in for bot.clients.wecom_client(): records mark_tag calls."""

    def __init__(self, fail_for: str | None = None):
        self.calls: list[tuple] = []
        self.fail_for = fail_for

    def mark_tag(self, userid, external_userid, add_tag=(), remove_tag=()):
        if external_userid == self.fail_for:
            raise RuntimeError("errcode 40096: invalid external userid")
        self.calls.append((userid, external_userid, sorted(add_tag), sorted(remove_tag)))
        return {"errcode": 0}

    def add_corp_tag(self, tags, group_id=None, group_name=None, order=None):
        return {"errcode": 0,
                "tag_group": {"group_name": group_name, "tag": [{"id": f"et{t}", "name": t} for t in tags]}}


def _tags(member_id: int) -> dict[str, str]:
    with session_scope() as s:
        rows = s.execute(select(Tag.name, MemberTag.source).join(MemberTag, MemberTag.tag_id == Tag.id)
                         .where(MemberTag.member_id == member_id))
        return dict(rows.all())


def _wecom_member(s, name: str, external: str, staff) -> int:
    m = Member(name=name)
    s.add(m)
    s.flush()
    s.add(Identity(member_id=m.id, type="wecom_external", scope="corp", value=external))
    add_relation(s, staff=staff, member_id=m.id)
    return m.id


def test_entering_tags_the_member_and_leaving_removes_only_the_rules_tag(settings, drain, stand_in):
    """Given a VIP segment with a remove-on-leave rule, when members enter and leave, then the rule's tag follows."""
    fake = FakeWeCom()
    stand_in(wecom=fake)
    with session_scope() as s:
        store = create_store(s, code="S001", name="一店")
        staff = upsert_staff(s, userid="zhangsan", name="张三", store_id=store.id)
        a = _wecom_member(s, "a", "wmA", staff)
        b = _wecom_member(s, "b", "wmB", staff)
        ensure_tag(s, "重点客户", wecom_tag_id="etCARE")
        sid = service.create_segment(s, name="VIP", definition={"tag": "VIP"}).id
        rule = service.create_tag_rule(s, name="care", tag="重点客户", segment_id=sid, remove_on_leave=True)
    drain()
    with session_scope() as s:
        vip = ensure_tag(s, "VIP")
        tag_member(s, a, vip)
        tag_member(s, b, vip)
        tag_member(s, b, ensure_tag(s, "重点客户"), source="manual")  # b already had it by hand
    drain()
    assert _tags(a)["重点客户"] == f"rule:{rule.id}"
    assert _tags(b)["重点客户"] == "manual"
    with session_scope() as s:
        vip = ensure_tag(s, "VIP")
        untag_member(s, a, vip)
        untag_member(s, b, vip)
    drain()
    assert "重点客户" not in _tags(a)
    assert _tags(b)["重点客户"] == "manual"
    with session_scope() as s:
        queued = list(s.scalars(select(WecomTagChange).order_by(WecomTagChange.id)))
    # the rule's own changes, attributed to it
    assert [(c.member_id, c.add) for c in queued if c.rule_id == rule.id] == [(a, True), (a, False)]
    # and the hand-made ones are mirrored too (VIP on and off for both, 重点客户 on b)
    assert sorted((c.member_id, c.add) for c in queued if c.rule_id is None) == sorted(
        [(a, True), (b, True), (b, True), (a, False), (b, False)])
    assert fake.calls  # the sync job ran after each commit and reached "WeCom"


def test_wecom_sync_groups_changes_per_staff_and_customer(settings, drain, stand_in):
    """Given queued changes for two customers, when synced, then one mark_tag per customer, a tag made in Siyu is
    created on WeCom first, and failures are recorded."""
    with session_scope() as s:
        store = create_store(s, code="S001", name="一店")
        staff = upsert_staff(s, userid="zhangsan", name="张三", store_id=store.id)
        a = _wecom_member(s, "a", "wmA", staff)
        b = _wecom_member(s, "b", "wmB", staff)
        c = Member(name="no wecom")
        s.add(c)
        s.flush()
        t1, t2 = ensure_tag(s, "一", wecom_tag_id="et1"), ensure_tag(s, "二", wecom_tag_id="et2")
        local = ensure_tag(s, "local only")
        s.add_all([WecomTagChange(member_id=m, tag_id=t, add=add)
                   for m, t, add in ((a, t1.id, True), (a, t2.id, True), (a, t2.id, False), (b, t1.id, True),
                                     (c.id, t1.id, True), (a, local.id, True))])
    drain()
    fake = FakeWeCom(fail_for="wmB")
    stand_in(wecom=fake)
    assert wecom_tags.sync_wecom_tags() == 1
    assert fake.calls == [("zhangsan", "wmA", ["et1", "etlocal only"], ["et2"])]
    with session_scope() as s:
        status = [(ch.member_id, ch.status) for ch in s.scalars(select(WecomTagChange).order_by(WecomTagChange.id))]
        assert s.get(Tag, local.id).wecom_tag_id == "etlocal only"
    assert status == [(a, "done"), (a, "done"), (a, "done"), (b, "failed"), (c.id, "skipped"), (a, "done")]
    assert wecom_tags.sync_wecom_tags() == 0  # nothing pending: safe to run twice


def test_a_message_with_a_keyword_tags_the_sender(settings, drain):
    """Given a keyword rule, when a message with that keyword is received, then the member gets the tag."""
    with session_scope() as s:
        m = Member(name="m")
        s.add(m)
        s.flush()
        rule = service.create_tag_rule(s, name="lens", tag="隐形眼镜意向", keywords=["隐形眼镜", "美瞳"])
        mid = m.id
    with session_scope() as s:
        record_event(s, mid, "message.received",
                     {"channel": "wecom", "text": "你好，想问一下美瞳多少钱", "keywords": []})
    drain()
    assert _tags(mid) == {"隐形眼镜意向": f"rule:{rule.id}"}
    with session_scope() as s:
        other = Member(name="o")
        s.add(other)
        s.flush()
        record_event(s, other.id, "message.received", {"channel": "wecom", "text": "营业时间？"})
        oid = other.id
    drain()
    assert _tags(oid) == {}
