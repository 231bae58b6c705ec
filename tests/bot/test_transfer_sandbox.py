"""The sandbox's 在职继承 / 离职继承 against the WeCom client over real HTTP: Tencent's shapes, limits and errcodes."""
from __future__ import annotations

import pytest

from bot.clients import wecom_client
from bot.errors import PermanentAPIError, TransportError
from bot.sandbox import transfer_state as T
from webhooks.crypto import parse_xml


@pytest.fixture
def corp(sandbox):
    """Staff a (serving, with customers c1–c3), b and c; d is in WeCom without customers."""
    for userid in ("a", "b", "c", "d"):
        sandbox.add_staff(userid)
    exts = [sandbox.add_external_contact("a", external_userid=f"c{i}") for i in (1, 2, 3)]
    return sandbox, exts


def _results(handover, takeover, resigned=False):
    answer = wecom_client().transfer_result(handover, takeover, resigned=resigned)
    return {c["external_userid"]: c for c in answer["customer"]}, answer


def test_a_transfer_answers_per_customer_errcodes_as_wecom_documents(corp):
    sandbox, (c1, c2, c3) = corp
    # given c2 handed over twice (a → c, c → a) in the last 90 days, and a stranger who is nobody's customer
    sandbox.add_past_handover("a", "c", c2, days_ago=60)
    sandbox.add_past_handover("c", "a", c2, days_ago=30)
    sandbox.add_external_contact("d", external_userid="stranger")
    # when a hands c1, c2, c3, an unknown id and the stranger to b
    answer = wecom_client().transfer_customer("a", "b", [c1, c2, c3, "wmNOBODY", "stranger"])
    # then each customer gets its own errcode: started, too frequent, started, invalid id, not a's customer
    assert answer["errcode"] == 0
    assert {c["external_userid"]: c["errcode"] for c in answer["customer"]} == {
        c1: 0, c2: 40128, c3: 0, "wmNOBODY": 40096, "stranger": 40131}
    # and a second handover of c1 while the first is pending is 当前客户正在转接中
    again = wecom_client().transfer_customer("a", "c", [c1])
    assert again["customer"] == [{"external_userid": c1, "errcode": 40129}]


def test_handovers_older_than_90_days_do_not_count_and_refused_ones_do_not_either(corp):
    sandbox, (c1, _, _) = corp
    # given two handovers of c1 91 days ago and one refused last week
    sandbox.add_past_handover("a", "c", c1, days_ago=91)
    sandbox.add_past_handover("c", "a", c1, days_ago=91)
    sandbox.add_past_handover("a", "c", c1, days_ago=7, status=T.REFUSED)
    # when / then a handover now is allowed
    assert wecom_client().transfer_customer("a", "b", [c1])["customer"][0]["errcode"] == 0


@pytest.mark.parametrize("body, errcode", [
    ({"handover_userid": "a", "takeover_userid": "b", "external_userid": [f"wm{i}" for i in range(101)]}, 40058),
    ({"handover_userid": "a", "takeover_userid": "b", "external_userid": []}, 40058),
    ({"handover_userid": "ghost", "takeover_userid": "b", "external_userid": ["c1"]}, 60111),
    ({"handover_userid": "a", "takeover_userid": "ghost", "external_userid": ["c1"]}, 60111),
    ({"handover_userid": "a", "takeover_userid": "a", "external_userid": ["c1"]}, 40130),
    ({"handover_userid": "a", "takeover_userid": "b", "external_userid": ["c1"], "transfer_success_msg": "x" * 201},
     40058),
], ids=["101-customers", "no-customer", "unknown-handover", "unknown-takeover", "same-staff", "long-message"])
def test_a_call_wecom_refuses_as_a_whole_hands_nobody_over(corp, body, errcode):
    sandbox, _ = corp
    # when the call is malformed
    with pytest.raises(PermanentAPIError) as exc:
        wecom_client().contact.post("externalcontact/transfer_customer", data=body)
    # then the whole call is refused and no handover began
    assert exc.value.errcode == errcode
    assert sandbox.handovers == []


def test_a_pending_handover_completes_after_24_hours_and_queues_wecoms_callbacks(corp):
    sandbox, (c1, _, _) = corp
    wecom_client().transfer_customer("a", "b", [c1], transfer_success_msg="您好，李四接替我为您服务")
    # given the handover is pending: transfer_result says 2 with the automatic takeover time
    before, _ = _results("a", "b")
    assert before[c1]["status"] == T.WAITING
    assert before[c1]["takeover_time"] == pytest.approx(sandbox.now() + 24 * 3600, abs=5)
    assert c1 in sandbox.follows["a"] and sandbox.take_transfer_callbacks() == []
    # when 24 hours pass
    sandbox.advance(24 * 3600 + 1)
    after, answer = _results("a", "b")
    # then b has the customer, a does not, and WeCom's two callbacks are queued: a's delete, b's add
    assert after[c1]["status"] == T.DONE and answer["next_cursor"] == ""
    assert c1 not in sandbox.follows["a"] and c1 in sandbox.follows["b"]
    events = [parse_xml(x) for x in sandbox.take_transfer_callbacks()]
    assert [(e["ChangeType"], e["UserID"], e.get("Source")) for e in events] == [
        ("del_external_contact", "a", "DELETE_BY_TRANSFER"), ("add_external_contact", "b", None)]
    assert {e["ExternalUserID"] for e in events} == {c1}


def test_a_takeover_who_already_follows_the_customer_gets_no_add_event(corp):
    sandbox, (c1, _, _) = corp
    sandbox.add_external_contact("b", external_userid=c1)
    wecom_client().transfer_customer("a", "b", [c1])
    # when the customer is taken over at once
    sandbox.accept_transfer(c1)
    # then only a's delete is sent ("如果接替成员在转接前已成为客户好友,则不会触发添加企业客户事件")
    assert [parse_xml(x)["ChangeType"] for x in sandbox.take_transfer_callbacks()] == ["del_external_contact"]


@pytest.mark.parametrize("act, status, reason", [("refuse_transfer", T.REFUSED, "customer_refused"),
                                                  ("takeover_full", T.TAKEOVER_FULL, "customer_limit_exceed")])
def test_a_refused_or_full_handover_leaves_the_customer_and_says_so_to_the_takeover(corp, act, status, reason):
    sandbox, (c1, _, _) = corp
    wecom_client().transfer_customer("a", "b", [c1])
    # when the customer refuses (or b has reached the customer limit)
    getattr(sandbox, act)(c1)
    sandbox.advance(24 * 3600 + 1)
    got, _ = _results("a", "b")
    # then the status says so, the customer stays with a, and transfer_fail names the takeover b
    assert got[c1] == {"external_userid": c1, "status": status, "takeover_time": 0}
    assert c1 in sandbox.follows["a"] and c1 not in sandbox.follows["b"]
    [event] = [parse_xml(x) for x in sandbox.take_transfer_callbacks()]
    assert (event["ChangeType"], event["UserID"], event["FailReason"]) == ("transfer_fail", "b", reason)


def test_resigned_transfers_need_a_member_who_left_and_have_their_own_results(corp):
    sandbox, (c1, c2, _) = corp
    client = wecom_client()
    # given a is still serving: 离职继承 is refused, 在职继承's results know nothing of it
    with pytest.raises(PermanentAPIError) as exc:
        client.resigned_transfer_customer("a", "b", [c1])
    assert exc.value.errcode == 40097
    # when a leaves
    sandbox.resign_staff("a")
    assert "a" not in {u["userid"] for u in client.list_users()["userlist"]}
    with pytest.raises(PermanentAPIError):  # 在职继承 of someone who left: no such serving member
        client.transfer_customer("a", "b", [c1])
    answer = client.resigned_transfer_customer("a", "b", [c1, c2])
    # then 离职继承 starts, and only resigned/transfer_result reports it
    assert [c["errcode"] for c in answer["customer"]] == [0, 0]
    assert _results("a", "b")[0] == {}
    assert {e: r["status"] for e, r in _results("a", "b", resigned=True)[0].items()} == {c1: T.WAITING, c2: T.WAITING}


def test_a_lost_answer_is_a_transport_error_for_a_call_wecom_carried_out(corp):
    sandbox, (c1, _, _) = corp
    sandbox.lose_answer("externalcontact/transfer_customer")
    # when the answer of a transfer is lost on its way back
    with pytest.raises(TransportError):
        wecom_client().transfer_customer("a", "b", [c1])
    # then the handover began all the same: transfer_result knows it
    assert _results("a", "b")[0][c1]["status"] == T.WAITING


def test_transfer_results_page_by_1000(corp):
    sandbox, _ = corp
    for i in range(1001):
        sandbox.add_past_handover("a", "b", f"wmOLD{i:04d}", days_ago=200)
    # when the results are read
    first = wecom_client().transfer_result("a", "b")
    rest = list(wecom_client().iter_transfer_results("a", "b"))
    # then at most 1000 come a page, and the cursor brings the rest
    assert len(first["customer"]) == 1000 and first["next_cursor"]
    assert len(rest) == 1001 and sandbox.calls["externalcontact/transfer_result"] == 3
