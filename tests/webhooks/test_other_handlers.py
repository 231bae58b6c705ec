"""Group chats, corp tags, template cards, official-account follows and text messages."""
from __future__ import annotations

from sqlalchemy import select

from config.database import session_scope
from membership.identity import IdentityIn, bind
from membership.models import Member, Tag, TimelineEvent
from tests.webhooks.conftest import fixture_text, handle


def _types() -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(TimelineEvent.type).order_by(TimelineEvent.id)))


def test_group_customers_are_bound_and_get_joined_and_left_once(settings, enqueued, fake_wecom):
    from membership.models import GroupChat, GroupChatMember, Identity

    # given a known customer wmEXT0001 and one Siyu has never seen, wmEXT0002, in a new chat
    with session_scope() as s:
        known = bind(s, [IdentityIn("wecom_external", "wmEXT0001", scope="wwsandbox00000001")]).member
    fake_wecom.chats["wrCHAT0001"] = {"chat_id": "wrCHAT0001", "name": "老客群", "owner": "zhangsan", "member_list": [
        {"userid": "zhangsan", "type": 1}, {"userid": "wmEXT0001", "type": 2, "join_time": 1700000000},
        {"userid": "wmEXT0002", "type": 2, "join_time": 1700000000}]}
    create = fixture_text("wecom", "event__change_external_chat__create.xml")
    handle("wecom", create)
    # when the create event is delivered again, both leave (one del_member event listing both), the chat is dismissed
    handle("wecom", create.replace("1700000000", "1700000060"))  # a later event, a new inbox row
    fake_wecom.chats["wrCHAT0001"]["member_list"] = [{"userid": "zhangsan", "type": 1}]
    handle("wecom", fixture_text("wecom", "event__change_external_chat__update@del_member.xml"))
    handle("wecom", fixture_text("wecom", "event__change_external_chat__dismiss.xml"))
    # then the stranger became a member, and each customer (never the staff member) has one joined then one left
    with session_scope() as s:
        stranger = s.scalar(select(Identity.member_id).where(Identity.value == "wmEXT0002"))
        rows = s.execute(select(TimelineEvent.member_id, TimelineEvent.type, TimelineEvent.data)
                         .where(TimelineEvent.type.startswith("group.")).order_by(TimelineEvent.id)).all()
        assert sorted((m, t) for m, t, _ in rows) == sorted([(known.id, "group.joined"), (stranger, "group.joined"),
                                                            (known.id, "group.left"), (stranger, "group.left")])
        assert {d["chat_id"] for _, _, d in rows} == {"wrCHAT0001"}
        assert s.scalar(select(GroupChat.status)) == "dismissed" and s.scalar(select(GroupChat.name)) == "老客群"
        assert not any(s.scalars(select(GroupChatMember.active)))


def test_an_unreadable_chat_applies_the_events_member_list(settings, enqueued, fake_wecom):
    from membership.models import GroupChatMember

    # given a chat with a known customer, which WeCom then stops answering for
    fake_wecom.chats["wrCHAT0001"] = {"chat_id": "wrCHAT0001", "name": "群", "owner": "zhangsan", "member_list": [
        {"userid": "zhangsan", "type": 1}, {"userid": "wmEXT0001", "type": 2, "join_time": 1700000000}]}
    handle("wecom", fixture_text("wecom", "event__change_external_chat__create.xml"))
    del fake_wecom.chats["wrCHAT0001"]
    # when a del_member event lists the customer
    handle("wecom", fixture_text("wecom", "event__change_external_chat__update@del_member.xml"))
    # then the customer has left and the staff member is still in
    with session_scope() as s:
        assert dict(s.execute(select(GroupChatMember.userid, GroupChatMember.active)).all()) == {
            "zhangsan": True, "wmEXT0001": False}
    assert _types().count("group.left") == 1


def test_corp_tag_changes_make_the_catalogue_follow_wecom(settings, enqueued, fake_wecom):
    # given WeCom has 兴趣/咖啡
    fake_wecom.corp_tags = [{"group_name": "兴趣", "tag": [{"id": "etTAG0001", "name": "咖啡"}]}]
    handle("wecom", fixture_text("wecom", "event__change_external_tag__create.xml"))
    # when it is renamed to 手冲 and then deleted
    fake_wecom.corp_tags = [{"group_name": "兴趣", "tag": [{"id": "etTAG0001", "name": "手冲"}]}]
    handle("wecom", fixture_text("wecom", "event__change_external_tag__update.xml"))
    with session_scope() as s:
        assert [(t.group_name, t.name) for t in s.scalars(select(Tag))] == [("兴趣", "手冲")]
    fake_wecom.corp_tags = []
    handle("wecom", fixture_text("wecom", "event__change_external_tag__delete.xml"))
    # then the local catalogue has no WeCom tag left
    with session_scope() as s:
        assert list(s.scalars(select(Tag))) == []


def test_template_card_clicks_reach_registered_handlers(settings, enqueued):
    from webhooks import registry

    seen = []

    def handler(session, card):
        seen.append((card["TaskId"], card["EventKey"], card["FromUserName"]))

    registry.on_template_card(handler)
    try:
        row = handle("wecom", fixture_text("wecom", "event__template_card_event.xml"))
    finally:
        registry.TEMPLATE_CARD_HANDLERS.remove(handler)
    assert row.status == "done" and seen == [("task-42-zhangsan", "task_done", "zhangsan")]


def test_a_follow_through_a_siyu_scene_is_attributed_to_store_and_staff(settings, enqueued, fake_oa):
    from membership.models import Store
    from webhooks.models import OAQrCode

    with session_scope() as s:
        store = Store(code="S002", name="徐汇店")
        s.add(store)
        s.flush()
        s.add(OAQrCode(scene="SCENE", store_id=store.id, staff_userid="zhangsan"))
    fake_oa.users["oFOLLOWER0001"] = {"subscribe": 1, "openid": "oFOLLOWER0001", "unionid": "uF1", "nickname": "Lily"}
    handle("official_account", fixture_text("official_account", "event__subscribe@qrscene.xml"))
    handle("official_account", fixture_text("official_account", "event__scan.xml"))
    handle("official_account", fixture_text("official_account", "event__unsubscribe.xml"))
    with session_scope() as s:
        [member] = s.scalars(select(Member)).all()
        assert member.store_id == store.id and member.name == "Lily"
        ev = s.scalar(select(TimelineEvent).where(TimelineEvent.type == "oa.subscribed"))
        assert ev.data["scene"] == "SCENE" and ev.data["staff"] == "zhangsan" and ev.data["store_id"] == store.id
    assert [t for t in _types() if t.startswith("oa.")] == ["oa.subscribed", "oa.scanned", "oa.unsubscribed"]


def test_a_plain_subscribe_has_no_scene(settings, enqueued, fake_oa):
    handle("official_account", fixture_text("official_account", "event__subscribe.xml"))
    with session_scope() as s:
        ev = s.scalar(select(TimelineEvent).where(TimelineEvent.type == "oa.subscribed"))
    assert ev.data == {"scene": None}


def test_text_messages_are_received_with_keywords_and_mp_replies_go_by_api(settings, enqueued, fake_oa):
    from webhooks.models import AutoReply

    with session_scope() as s:
        s.add(AutoReply(keywords=["拼团"], match="keyword", reply_text="点这里参加拼团", channels=["miniprogram"]))
    handle("official_account", fixture_text("official_account", "text.xml"))
    mp_row = handle("miniprogram", fixture_text("miniprogram", "text.xml"))
    with session_scope() as s:
        evs = list(s.scalars(select(TimelineEvent).where(TimelineEvent.type == "message.received")
                            .order_by(TimelineEvent.id)))
    assert [e.data["channel"] for e in evs] == ["official_account", "miniprogram"]
    assert "营业" in evs[0].data["keywords"] and "拼团" in evs[1].data["keywords"]
    # the MP has no passive reply: the matching rule's answer is queued for the customer-service API
    assert [c for c in enqueued if c[0] == "send_custom_reply"] == [
        ("send_custom_reply", ("miniprogram", "oMPUSER00001", 1, mp_row.id), "fast")]
