"""End to end against the sandbox: a channel-code burst, delivered twice and partly out of order."""
from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select

from config.database import session_scope
from membership.models import Identity, Member, MemberTag, Relation, Tag, TimelineEvent
from tests.webhooks.conftest import ADMIN, wecom_creds, wecom_post
from bot.sandbox import events as tencent

CUSTOMERS, SHARED, REORDERED = 200, 10, 20


def _app_post(client, path, plaintext):
    from bot.credentials import oa_credentials
    from bot.sandbox.callbacks import send_oa_event
    from config.settings import get_settings

    # as Tencent sends it for the sandbox's account, which has an EncodingAESKey: in safe mode
    return send_oa_event(path, oa_credentials(get_settings()), plaintext, "", client=client)


def test_a_channel_code_burst_delivered_twice_and_out_of_order_lands_exactly_once(sandbox, client, drain,
                                                                                 monkeypatch):
    # This test is about exactly-once under duplication and reordering, not about how fast a loaded CI machine
    # works through 200 welcome codes (that is bench/webhooks.py's business; the 20-second expiry has its own
    # tests in test_contacts.py). So both sides give the codes ten minutes here instead of twenty seconds.
    monkeypatch.setattr("webhooks.wecom.welcome.WELCOME_CODE_TTL", timedelta(minutes=10))
    monkeypatch.setattr("bot.sandbox.wecom_api.WELCOME_CODE_TTL", 600)
    rnd = random.Random(7)
    corp = wecom_creds().corp_id
    # given a store, a staff member in WeCom and Siyu, and a channel code with a tag and a welcome text
    sandbox.add_staff("zhangsan", "张三")
    client.post("/api/v1/stores", json={"code": "S001", "name": "静安店"}, headers=ADMIN)
    client.post("/api/v1/staff", json={"userid": "zhangsan", "name": "张三", "store": "S001"}, headers=ADMIN)
    r = client.post("/api/v1/channel-codes", headers=ADMIN, json={
        "name": "门店码", "store": "S001", "staff": ["zhangsan"], "tags": ["扫码新客"],
        "welcome": {"text": "欢迎光临"}})
    assert r.status_code == 201, r.text
    state = r.json()["state"]
    # and 10 official-account followers Siyu already knows, each with a unionid
    from bot.credentials import oa_credentials
    from config.settings import get_settings

    oa_app = oa_credentials(get_settings()).app_id
    for i in range(SHARED):
        sandbox.add_oa_follower(openid=f"oFAN{i:03d}", unionid=f"uSHARED{i:03d}")
        followed = _app_post(client, "/webhooks/official-account", tencent.oa_subscribe(f"oFAN{i:03d}", to=oa_app))
        assert followed.status_code == 200
    drain()
    with session_scope() as s:
        followers = set(s.scalars(select(Member.id)))
    assert len(followers) == SHARED

    # when 200 customers add zhangsan through the code (10 share a unionid with the followers)
    events = []
    for i in range(CUSTOMERS):
        ext = sandbox.add_external_contact("zhangsan", external_userid=f"wmE2E{i:04d}", name=f"客户{i}",
                                           unionid=f"uSHARED{i:03d}" if i < SHARED else None, state=state)
        add = tencent.add_external_contact(corp, "zhangsan", ext, state=state,
                                           welcome_code=sandbox.new_welcome_code("zhangsan", ext),
                                           create_time=1700000000 + i)
        if i < REORDERED:  # a later edit (a remark) delivered before the add
            sandbox.follows["zhangsan"][ext]["remark"] = f"备注{i}"
            edit = tencent.edit_external_contact(corp, "zhangsan", ext, create_time=1700000100 + i)
            events += [edit, add]
        else:
            events.append(add)
    second = events[:]
    rnd.shuffle(second)
    for plaintext in events + second:  # every event delivered twice
        assert wecom_post(client, wecom_creds(), plaintext).status_code == 200
    drain(90)

    # then 190 new members plus the 10 followers, each customer a member once
    with session_scope() as s:
        live = set(s.scalars(select(Member.id).where(Member.merged_into_id.is_(None))))
        assert len(live) == CUSTOMERS
        assert len(live - followers) == CUSTOMERS - SHARED
        wecom_members = s.execute(select(Identity.value, Identity.member_id)
                                  .where(Identity.type == "wecom_external")).all()
        assert len(wecom_members) == CUSTOMERS
        shared_ids = {m for v, m in wecom_members if int(v[5:]) < SHARED}
        assert shared_ids == followers
        # every relation once, active, with the code; every tag once
        assert s.scalar(select(func.count()).select_from(Relation)) == CUSTOMERS
        coded = select(func.count()).select_from(Relation).where(Relation.status == "active",
                                                                 Relation.channel_code_id.is_not(None))
        assert s.scalar(coded) == CUSTOMERS
        assert s.scalar(select(func.count()).select_from(Relation).where(Relation.remark.like("备注%"))) == REORDERED
        tag_id = s.scalar(select(Tag.id).where(Tag.name == "扫码新客"))
        assert s.scalar(select(func.count()).select_from(MemberTag).where(MemberTag.tag_id == tag_id)) == CUSTOMERS
        # and the timeline has no duplicates
        rows = s.execute(select(TimelineEvent.member_id, TimelineEvent.type)).all()
        by_type = {}
        for member_id, type_ in rows:
            by_type.setdefault(type_, []).append(member_id)
        assert len(by_type["contact.added"]) == len(set(by_type["contact.added"])) == CUSTOMERS
        assert len(by_type["contact.edited"]) == REORDERED
        assert len(by_type["tag.added"]) == len(set(by_type["tag.added"])) == CUSTOMERS
        assert len(by_type["oa.subscribed"]) == SHARED
    # and WeCom saw one mark_tag and one welcome message per customer
    assert sandbox.calls["externalcontact/mark_tag"] == CUSTOMERS
    assert len(sandbox.welcome_sent) == CUSTOMERS
    assert {w["external_userid"] for w in sandbox.welcome_sent} == {f"wmE2E{i:04d}" for i in range(CUSTOMERS)}
    assert all(w["body"]["text"]["content"] == "欢迎光临" for w in sandbox.welcome_sent)


def test_auto_replies_that_need_the_customer_service_api_reach_the_sandbox(sandbox):
    from webhooks.models import AutoReply
    from webhooks.replies import send_custom_reply

    # given an OA follower, a mini-program user, and a text rule and a mini-program-card rule
    follower, mp_user = sandbox.add_oa_follower(), sandbox.add_mp_user()
    with session_scope() as s:
        text_rule = AutoReply(keywords=["营业"], reply_text="9:00-21:00")
        card_rule = AutoReply(keywords=["预约"], miniprogram={"title": "预约", "appid": "wxsandboxmp000001",
                                                             "pagepath": "pages/book", "thumb_media_id": "MEDIA"})
        s.add_all([text_rule, card_rule])
        s.flush()
        text_id, card_id = text_rule.id, card_rule.id
    # when the reply jobs run (MP text replies and OA cards cannot be passive replies)
    send_custom_reply("miniprogram", mp_user, text_id, 1)
    send_custom_reply("official_account", follower, card_id, 2)
    # and a retried job (the same message and rule) sends nothing twice
    assert send_custom_reply("miniprogram", mp_user, text_id, 1) is None
    # then Tencent's customer-service API took both, each from the right app
    assert [(m["app"], m["touser"], m["msgtype"]) for m in sandbox.custom_sends] == [
        ("mp", mp_user, "text"), ("oa", follower, "miniprogrampage")]
