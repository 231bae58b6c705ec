"""Every handled (source, MsgType, Event, ChangeType) has a fixture payload, every fixture is handled, and each
handler writes what it is for, and nothing else."""
from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from config.database import session_scope
from config.queue import recording
from membership.models import GroupChat, GroupChatMember, Relation, Staff, Tag, TimelineEvent
from tests.webhooks.conftest import FIXTURES, handle
from webhooks import registry
from webhooks.crypto import parse_body
from webhooks.dispatch import handlers
from webhooks.inbox import event_kind, process_inbox

SOURCES = ("wecom", "official_account", "miniprogram", "wechatpay")
ALL_FIXTURES = sorted(p for s in SOURCES for p in (FIXTURES / s).iterdir() if p.is_file())


def _stem_key(path) -> tuple[str, str, str, str]:
    # event__change_external_contact__add_external_contact@variant.xml -> (source, event, change_..., add_...)
    parts = path.name.split("@")[0].rsplit(".", 1)[0].split("__")
    parts += [""] * (3 - len(parts))
    return (path.parent.name, *parts)


def test_every_handled_event_kind_has_a_fixture():
    # given the handler table, when fixture names are read, then no handled kind lacks a payload
    covered = {_stem_key(p) for p in ALL_FIXTURES}
    missing = sorted(set(handlers()) - covered)
    assert missing == [], f"handled without a fixture in tests/fixtures/: {missing}"


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_is_named_for_its_kind_and_has_a_handler(path):
    # given a fixture, when parsed, then its file name says its kind and that kind is handled
    data, _ = parse_body(path.read_text())
    key = (path.parent.name, *event_kind(data))
    assert _stem_key(path) == key
    assert key in handlers()


# -- what each handler writes ------------------------------------------------------------------------------
ADD = "wecom/event__change_external_contact__add_external_contact.xml"
CHAT = "wecom/event__change_external_chat__create.xml"
TAG = "wecom/event__change_external_tag__create.xml"
COFFEE = {"group_id": "etGROUP001", "group_name": "兴趣", "tag": [{"id": "etTAG0001", "name": "咖啡"}]}
STAFF, CUSTOMER = {"userid": "zhangsan", "type": 1, "join_time": 1700000000}, {
    "userid": "wmEXT0001", "type": 2, "join_time": 1700000000}


def _chat(*members, **fields) -> dict:
    return {"chat_id": "wrCHAT0001", "name": "群", "owner": "zhangsan", "notice": "", "member_list": list(members),
            **fields}


def _world(cards: list) -> dict:
    """What handlers write, each kind of row as a sorted list of the fields that matter."""
    with session_scope() as s:
        return {
            "events": sorted((e.type, *(str(e.data.get(k)) for k in ("scene", "channel", "text", "staff", "reason")
                                        if k in e.data)) for e in s.scalars(select(TimelineEvent))),
            "relations": sorted(s.execute(select(Staff.userid, Relation.status).join(Staff)).all()),
            "chats": sorted(s.execute(select(GroupChat.chat_id, GroupChat.name, GroupChat.owner_userid,
                                             GroupChat.notice, GroupChat.status)).all()),
            "chat_members": sorted(s.execute(select(GroupChatMember.userid, GroupChatMember.active)).all()),
            "tags": sorted(s.execute(select(Tag.group_name, Tag.name, Tag.wecom_tag_id)).all()),
            "cards": list(cards),
        }


# fixture -> (fixtures handled before it, WeCom's state changed before it as fn(fake wecom), what it changes)
EFFECTS = {
    # Pay notifications as the intake stores them (decrypted, checked): group-buy applies them (its own tests);
    # one for an order no registrant knows changes nothing.
    **{f"wechatpay/notification__{kind}.json": ([], None, {})
       for kind in ("transaction.success", "refund.success", "refund.abnormal", "refund.closed")},
    ADD: ([], None, {"events": [("contact.added", "zhangsan")], "relations": [("zhangsan", "active")]}),
    "wecom/event__change_external_contact__add_half_external_contact.xml": (
        [], None, {"events": [("contact.added", "zhangsan")], "relations": [("zhangsan", "active")]}),
    "wecom/event__change_external_contact__edit_external_contact.xml": (
        [ADD], None, {"events": [("contact.added", "zhangsan"), ("contact.edited", "zhangsan")]}),
    "wecom/event__change_external_contact__del_external_contact.xml": (
        [ADD], None, {"events": [("contact.added", "zhangsan"), ("contact.removed_by_staff", "zhangsan")],
                      "relations": [("zhangsan", "removed_by_staff")]}),
    "wecom/event__change_external_contact__del_external_contact@transfer.xml": (
        [ADD], None, {"events": [("contact.added", "zhangsan"), ("contact.transferred", "zhangsan")],
                      "relations": [("zhangsan", "transferred")]}),
    "wecom/event__change_external_contact__del_follow_user.xml": (
        [ADD], None, {"events": [("contact.added", "zhangsan"), ("contact.lost", "zhangsan")],
                      "relations": [("zhangsan", "lost")], "jobs": ["send_loss_alert"]}),
    "wecom/event__change_external_contact__transfer_fail.xml": (
        [ADD], None,
        {"events": [("contact.added", "zhangsan"), ("contact.transfer_failed", "lisi", "customer_refused")]}),
    CHAT: ([], None, {"events": [("group.joined",)], "chats": [("wrCHAT0001", "群", "zhangsan", "", "active")],
                      "chat_members": [("wmEXT0001", True), ("zhangsan", True)]}),
    "wecom/event__change_external_chat__update@add_member.xml": (
        [CHAT], lambda w: w.chats["wrCHAT0001"]["member_list"].append({**CUSTOMER, "userid": "wmEXT0002"}),
        {"events": [("group.joined",), ("group.joined",)],
         "chat_members": [("wmEXT0001", True), ("wmEXT0002", True), ("zhangsan", True)]}),
    "wecom/event__change_external_chat__update@del_member.xml": (
        [CHAT], lambda w: w.chats["wrCHAT0001"]["member_list"].remove(CUSTOMER),
        {"events": [("group.joined",), ("group.left",)], "chat_members": [("wmEXT0001", False), ("zhangsan", True)]}),
    "wecom/event__change_external_chat__update@change_name.xml": (
        [CHAT], lambda w: w.chats["wrCHAT0001"].update(name="咖啡群"),
        {"chats": [("wrCHAT0001", "咖啡群", "zhangsan", "", "active")]}),
    "wecom/event__change_external_chat__update@change_notice.xml": (
        [CHAT], lambda w: w.chats["wrCHAT0001"].update(notice="周五上新"),
        {"chats": [("wrCHAT0001", "群", "zhangsan", "周五上新", "active")]}),
    "wecom/event__change_external_chat__update@change_owner.xml": (
        [CHAT], lambda w: w.chats["wrCHAT0001"].update(owner="lisi"),
        {"chats": [("wrCHAT0001", "群", "lisi", "", "active")]}),
    "wecom/event__change_external_chat__dismiss.xml": (
        [CHAT], None, {"events": [("group.joined",), ("group.left",)],
                       "chats": [("wrCHAT0001", "群", "zhangsan", "", "dismissed")],
                       "chat_members": [("wmEXT0001", False), ("zhangsan", False)]}),
    TAG: ([], None, {"tags": [("兴趣", "咖啡", "etTAG0001")]}),
    "wecom/event__change_external_tag__update.xml": (
        [TAG], lambda w: w.corp_tags[0]["tag"][0].update(name="手冲"), {"tags": [("兴趣", "手冲", "etTAG0001")]}),
    "wecom/event__change_external_tag__delete.xml": ([TAG], lambda w: w.corp_tags[0]["tag"].clear(), {"tags": []}),
    "wecom/event__change_external_tag__delete@tag_group.xml": ([TAG], lambda w: w.corp_tags.clear(), {"tags": []}),
    "wecom/event__change_external_tag__shuffle.xml": (  # only the order changed: the catalogue stays as it is
        [TAG], lambda w: w.corp_tags[0].update(order=9), {}),
    "wecom/event__template_card_event.xml": ([], None, {"cards": [("zhangsan", "task_done", "task-42-zhangsan")]}),
    "official_account/event__subscribe.xml": ([], None, {"events": [("oa.subscribed", "None")]}),
    "official_account/event__subscribe@qrscene.xml": ([], None, {"events": [("oa.subscribed", "SCENE")]}),
    "official_account/event__scan.xml": ([], None, {"events": [("oa.scanned", "SCENE")]}),
    "official_account/event__unsubscribe.xml": ([], None, {"events": [("oa.unsubscribed",)]}),
    # a template message no campaign sent: nothing changes (campaigns' own tests cover theirs)
    "official_account/event__templatesendjobfinish.xml": ([], None, {}),
    "official_account/text.xml": (
        [], None, {"events": [("message.received", "official_account", "请问门店几点营业")]}),
    "miniprogram/text.xml": ([], None, {"events": [("message.received", "miniprogram", "拼团怎么参加")]}),
    "miniprogram/text@json.json": ([], None, {"events": [("message.received", "miniprogram", "拼团怎么参加")]}),
}


def test_every_fixture_says_what_its_handler_writes():
    assert sorted(EFFECTS) == sorted(f"{p.parent.name}/{p.name}" for p in ALL_FIXTURES)


@pytest.fixture
def cards():
    """Template-card clicks, as a card handler bound for the test sees them."""
    seen = []

    def handler(session, card):
        seen.append((card["FromUserName"], card["EventKey"], card["TaskId"]))

    registry.on_template_card(handler)
    yield seen
    registry.TEMPLATE_CARD_HANDLERS.remove(handler)


@pytest.mark.parametrize("name", sorted(EFFECTS))
def test_fixture_is_handled_and_writes_what_its_handler_is_for(name, enqueued, fake_wecom, fake_oa, cards):
    # (enqueued: no job runs; each is recorded)
    before_fixtures, change_wecom, effects = EFFECTS[name]
    # given a WeCom that knows the fixtures' customer, chat and tag, and the events that come before this one
    fake_wecom.add_contact("wmEXT0001", "zhangsan", unionid="uEXT0001")
    fake_wecom.chats["wrCHAT0001"] = copy.deepcopy(_chat(STAFF, CUSTOMER))
    fake_wecom.corp_tags = copy.deepcopy([COFFEE])
    for earlier in before_fixtures:
        assert handle(earlier.split("/")[0], (FIXTURES / earlier).read_text()).status == "done"
    if change_wecom:
        change_wecom(fake_wecom)
    before = _world(cards)
    # when the fixture is stored and processed
    with recording() as queued:
        row = handle(name.split("/")[0], (FIXTURES / name).read_text())
    # then its row is done, and exactly what its handler is for changed: rows, and the intake's own jobs it
    # queued (besides the event's own job; the segments' re-checks are the listeners', not the handler's)
    assert row.status == "done", row.error
    after = _world(cards)
    changed = {k: v for k, v in after.items() if v != before[k]}
    jobs = [j.func.__name__ for j in queued
            if j.func.__module__.startswith("webhooks.") and j.func is not process_inbox]
    assert changed | ({"jobs": jobs} if jobs else {}) == effects
