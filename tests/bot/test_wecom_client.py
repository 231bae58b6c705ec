"""The WeCom client against the sandbox over real HTTP."""
from __future__ import annotations

import pytest

from bot.clients import wecom_client
from bot.errors import PermanentAPIError


def test_given_a_customer_when_fetched_then_wecom_shapes_come_back(sandbox):
    # given
    sandbox.add_staff("zhangsan", "张三")
    ext = sandbox.add_external_contact("zhangsan", unionid="union-1", name="李四", state="store1")
    # when
    got = wecom_client().get_external_contact(ext)
    # then
    assert got["errcode"] == 0
    assert got["external_contact"]["external_userid"] == ext
    assert got["external_contact"]["unionid"] == "union-1"
    assert [f["userid"] for f in got["follow_user"]] == ["zhangsan"]
    assert got["follow_user"][0]["state"] == "store1"


def test_given_many_customers_when_iterated_by_user_then_every_follow_arrives_once(sandbox):
    # given: 3 staff, 250 customers, 40 of them following two staff
    for u in ("a", "b", "c"):
        sandbox.add_staff(u)
    exts = [sandbox.add_external_contact(("a", "b", "c")[i % 3]) for i in range(250)]
    for ext in exts[:40]:
        sandbox.add_external_contact("c" if ext in sandbox.follows["a"] else "a", external_userid=ext)
    # when
    items = list(wecom_client().iter_contacts_by_user(["a", "b", "c"]))
    # then
    pairs = {(i["follow_info"]["userid"], i["external_contact"]["external_userid"]) for i in items}
    assert len(items) == len(pairs) == 290
    assert sandbox.calls["externalcontact/batch/get_by_user"] == 3  # 290 items, 100 a page


def test_given_101_userids_when_batch_get_then_the_sandbox_refuses_like_wecom(sandbox):
    # given
    for i in range(101):
        sandbox.add_staff(f"u{i}")
    # when / then
    with pytest.raises(PermanentAPIError) as exc:
        wecom_client().batch_get_by_user([f"u{i}" for i in range(101)])
    assert exc.value.errcode == 40058


def test_given_a_contact_way_with_a_31_char_state_then_it_is_refused_and_30_is_accepted(sandbox):
    # given
    sandbox.add_staff("zhangsan")
    client = wecom_client()
    # when / then
    with pytest.raises(PermanentAPIError) as exc:
        client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="s" * 31)
    assert exc.value.errcode == 40058
    made = client.add_contact_way(type=1, scene=2, user=["zhangsan"], state="s" * 30)
    assert made["config_id"] and made["qr_code"]
    assert client.get_contact_way(made["config_id"])["contact_way"]["state"] == "s" * 30
    client.del_contact_way(made["config_id"])
    with pytest.raises(PermanentAPIError):
        client.get_contact_way(made["config_id"])


def test_given_a_welcome_code_when_used_twice_then_the_second_is_refused(sandbox):
    # given
    ext = sandbox.add_external_contact("zhangsan")
    code = sandbox.new_welcome_code("zhangsan", ext)
    client = wecom_client()
    # when
    client.send_welcome_msg(code, text="欢迎光临")
    # then
    with pytest.raises(PermanentAPIError) as exc:
        client.send_welcome_msg(code, text="欢迎光临")
    assert exc.value.errcode == 41051
    assert len(sandbox.welcome_sent) == 1


def test_given_a_welcome_code_older_than_20_seconds_then_it_is_refused(sandbox):
    # given
    ext = sandbox.add_external_contact("zhangsan")
    code = sandbox.new_welcome_code("zhangsan", ext)
    sandbox.advance(21)
    # when / then
    with pytest.raises(PermanentAPIError) as exc:
        wecom_client().send_welcome_msg(code, text="hi")
    assert exc.value.errcode == 41051


def test_corp_tags_round_trip_and_mark_tag(sandbox):
    # given
    ext = sandbox.add_external_contact("zhangsan")
    client = wecom_client()
    # when
    added = client.add_corp_tag(["VIP", "新客"], group_name="等级")
    ids = {t["name"]: t["id"] for t in added["tag_group"]["tag"]}
    client.edit_corp_tag(ids["新客"], name="新客户")
    client.mark_tag("zhangsan", ext, add_tag=[ids["VIP"]])
    # then
    names = {t["name"] for g in client.list_corp_tags()["tag_group"] for t in g["tag"]}
    assert names == {"VIP", "新客户"}
    follow = client.get_external_contact(ext)["follow_user"][0]
    assert [t["tag_name"] for t in follow["tags"]] == ["VIP"]
    client.del_corp_tag(tag_ids=[ids["VIP"]])
    assert {t["name"] for g in client.list_corp_tags()["tag_group"] for t in g["tag"]} == {"新客户"}


def test_given_a_mass_message_when_staff_confirms_then_results_respect_the_monthly_quota(sandbox):
    # given: one customer already at the monthly quota, one fresh
    sandbox.monthly_mass_quota = 1
    full = sandbox.add_external_contact("zhangsan")
    fresh = sandbox.add_external_contact("zhangsan")
    sandbox.mass_received[(full, sandbox.month_key())] = 1
    client = wecom_client()
    # when
    msgid = client.add_msg_template({"chat_type": "single", "sender": "zhangsan",
                                     "external_userid": [full, fresh], "text": {"content": "双十二"}})["msgid"]
    before = client.get_groupmsg_task(msgid)["task_list"]
    sandbox.confirm_msg_task(msgid, "zhangsan")
    # then
    assert before == [{"userid": "zhangsan", "status": 0}]
    assert client.get_groupmsg_task(msgid)["task_list"][0]["status"] == 2
    sent = client.get_groupmsg_send_result(msgid, "zhangsan")["send_list"]
    results = {r["external_userid"]: r["status"] for r in sent}
    assert results == {full: 3, fresh: 1}
    listed = client.get_groupmsg_list_v2(start_time=int(sandbox.now()) - 60, end_time=int(sandbox.now()) + 60)
    assert [m["msgid"] for m in listed["group_msg_list"]] == [msgid]
    assert client.remind_groupmsg_send(msgid)["errcode"] == 0


def test_group_chats_transfers_staff_and_app_messages(sandbox):
    # given
    sandbox.add_department("一号店", id=2)
    sandbox.add_staff("a", department=2)
    sandbox.add_staff("b", department=2)
    ext = sandbox.add_external_contact("a", unionid="u-9")
    chat_id = sandbox.add_group_chat("a", "VIP群", external_userids=(ext,))
    client = wecom_client()
    # when / then
    assert client.list_group_chats()["group_chat_list"] == [{"chat_id": chat_id, "status": 0}]
    members = client.get_group_chat(chat_id)["group_chat"]["member_list"]
    assert {m["userid"] for m in members} == {"a", ext}
    assert client.transfer_customer("a", "b", [ext])["customer"] == [{"external_userid": ext, "errcode": 0}]
    with pytest.raises(PermanentAPIError) as exc:  # 离职继承 needs a handover staff member who left
        client.resigned_transfer_customer("a", "b", [ext])
    assert exc.value.errcode == 40097
    assert {u["userid"] for u in client.list_users()["userlist"]} == {"a", "b", "zhangsan"} - {"zhangsan"}
    sent = client.send_message({"touser": "a", "msgtype": "template_card", "template_card": {
        "card_type": "button_interaction", "main_title": {"title": "任务"}, "task_id": "t-1",
        "button_list": [{"text": "完成", "key": "done"}]}})
    assert sent["response_code"]
    client.update_template_card({"userids": ["a"], "response_code": sent["response_code"],
                                 "button": {"replace_name": "已完成"}})
    with pytest.raises(PermanentAPIError):
        client.update_template_card({"userids": ["a"], "response_code": sent["response_code"],
                                     "button": {"replace_name": "again"}})


def test_app_messages_need_the_agents_id_and_the_agents_token_as_in_wecom(sandbox):
    from dataclasses import replace

    from bot.wecom import WeComClient

    # given a staff member and the configured client, which sends as the agent
    sandbox.add_staff("a")
    client = wecom_client()
    text = {"touser": "a", "msgtype": "text", "text": {"content": "hi"}}
    assert client.send_message(text)["errcode"] == 0
    # when app messages go out on the 客户联系 secret's token
    on_contact_token = WeComClient(client.creds, client.contact, agent=client.contact)
    with pytest.raises(PermanentAPIError) as exc:
        on_contact_token.send_message(text)
    # then WeCom's answer: that token may not speak for the app
    assert exc.value.errcode == 301002
    # and a client without an app secret says what is missing without calling WeCom at all
    with pytest.raises(PermanentAPIError, match="SIYU_WECOM_AGENT_SECRET"):
        WeComClient(client.creds, client.contact).send_message(text)
    # and an agentid that is not the app's is refused too
    wrong_agent = WeComClient(replace(client.creds, agent_id="1000999"), client.contact, client.agent)
    with pytest.raises(PermanentAPIError) as exc:
        wrong_agent.send_message(text)
    assert exc.value.errcode == 40056
    assert len(sandbox.app_messages) == 1


def test_a_lost_answer_is_an_http_504_after_the_call_was_carried_out_for_any_wecom_api(sandbox):
    # given a customer, and the answer of the next tag mark to be lost on its way back
    from bot.errors import TransportError

    sandbox.add_staff("zhangsan")
    ext = sandbox.add_external_contact("zhangsan")
    tag = wecom_client().add_corp_tag([{"name": "老客"}], group_name="客户")["tag_group"]["tag"][0]["id"]
    sandbox.lose_answer("externalcontact/mark_tag")
    # when it is called
    with pytest.raises(TransportError, match="HTTP 504"):
        wecom_client().mark_tag("zhangsan", ext, add_tag=[tag])
    # then WeCom did it all the same, and the next call is answered
    assert sandbox.follows["zhangsan"][ext]["tag_id"] == [tag]
    assert wecom_client().mark_tag("zhangsan", ext, add_tag=[tag])["errcode"] == 0


def test_with_a_latency_set_every_call_waits_at_least_that_long(sandbox):
    import time

    sandbox.add_staff("zhangsan")
    ext = sandbox.add_external_contact("zhangsan")
    wecom_client().get_external_contact(ext)  # the token, fetched before the latency is set
    sandbox.latency = 0.2
    started = time.perf_counter()
    assert wecom_client().get_external_contact(ext)["errcode"] == 0
    assert time.perf_counter() - started >= 0.2
