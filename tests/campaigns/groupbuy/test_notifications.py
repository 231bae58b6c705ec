"""/webhooks/wechatpay: every check happens before the answer; a refused notification changes nothing."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bot.credentials import SANDBOX_MCH_ID
from bot.sandbox.state import get_state
from config.database import session_scope
from config.types import utcnow
from membership.models import TimelineEvent
from tests.campaigns.groupbuy.conftest import consumer, drain, make_offer, order_row, signed_notification
from webhooks.inbox import inbox_scope
from webhooks.models import InboxEvent


def _inbox_rows() -> int:
    with inbox_scope() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent).where(InboxEvent.source == "wechatpay"))


def _paid_events() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(TimelineEvent).where(TimelineEvent.type == "groupbuy.paid"))


@pytest.fixture
def pending(http):
    """An order prepaid at the sandbox and paid there, whose notification Siyu has not had: its resource."""
    offer = make_offer(http)
    _, headers = consumer(1)
    order = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers).json()["order"]
    paid = get_state().pay_order(order["out_trade_no"])
    return {k: v for k, v in paid.items() if not k.startswith("_")}


def test_the_same_notification_delivered_15_times_pays_the_order_once(http, pending):
    # given one signed notification of a payment
    headers, body = signed_notification(pending)
    # when WeChat Pay delivers it 15 times
    answers = [http.post("/webhooks/wechatpay", content=body, headers=headers).status_code for _ in range(15)]
    drain()
    # then every delivery is answered 200, one is stored, and the order is paid once
    assert answers == [200] * 15
    assert _inbox_rows() == 1
    assert order_row(pending["out_trade_no"]).status == "paid"
    assert _paid_events() == 1


def test_a_notification_re_encrypted_under_a_new_id_is_the_same_payment(http, pending):
    # given the same payment notified twice with different ids and encryption nonces
    for _ in range(2):
        headers, body = signed_notification(pending)
        assert http.post("/webhooks/wechatpay", content=body, headers=headers).status_code == 200
    drain()
    # then it is stored once (the key is the payment, not the envelope) and applied once
    assert _inbox_rows() == 1 and _paid_events() == 1


def _tampered(resource: dict, case: str) -> tuple[dict, bytes]:
    if case == "bad signature":
        headers, body = signed_notification(resource)
        return headers, body.replace(b'"summary":"', b'"summary":"x')
    if case == "stale timestamp":
        return signed_notification(resource, timestamp=int(utcnow().timestamp()) - 301)
    if case == "future timestamp":
        return signed_notification(resource, timestamp=int(utcnow().timestamp()) + 301)
    if case == "unknown serial":
        return signed_notification(resource, serial="PUB_KEY_ID_SOMEONE_ELSE")
    if case == "wrong key":
        return signed_notification(resource, apiv3_key="x" * 32)
    if case == "wrong amount":
        return signed_notification(resource | {"amount": {**resource["amount"], "total": 1}})
    if case == "wrong mchid":
        return signed_notification(resource | {"mchid": "1900009999"})
    if case == "wrong appid":
        return signed_notification(resource | {"appid": "wxsomeoneelse0001"})
    if case == "unknown order":
        return signed_notification(resource | {"out_trade_no": "GB20260101FFFFFFFFFFFFFFFFFFFF"})
    if case == "not paid":
        return signed_notification(resource | {"trade_state": "NOTPAY"})
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "status"), [
    ("bad signature", 403), ("stale timestamp", 403), ("future timestamp", 403), ("unknown serial", 403),
    ("wrong key", 400), ("wrong amount", 400), ("wrong mchid", 400), ("wrong appid", 400), ("unknown order", 404),
    ("not paid", 400),
])
def test_a_refused_notification_answers_4xx_in_pay_s_words_and_changes_nothing(http, pending, case, status):
    # given a notification that fails one check
    headers, body = _tampered(pending, case)
    # when it is delivered
    answer = http.post("/webhooks/wechatpay", content=body, headers=headers)
    drain()
    # then it is refused with Pay v3's failure body, before anything is stored
    assert answer.status_code == status
    assert answer.json()["code"] == "FAIL" and answer.json()["message"]
    assert _inbox_rows() == 0
    # and the order is still unpaid
    assert order_row(pending["out_trade_no"]).status == "pending" and _paid_events() == 0


def test_a_body_that_is_not_a_notification_is_refused_with_400(http):
    headers, _ = signed_notification({"mchid": "x"})
    from bot import pay_crypto as pc
    from bot.credentials import sandbox_file
    from config.settings import get_settings

    body = b"not json"
    key = pc.load_private_key(str(sandbox_file(get_settings(), "pay_platform_key.pem")))
    ts, nonce = headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"]
    headers["Wechatpay-Signature"] = pc.rsa_sign(key, f"{ts}\n{nonce}\nnot json\n")
    answer = http.post("/webhooks/wechatpay", content=body, headers=headers)
    assert answer.status_code == 400 and answer.json()["code"] == "FAIL"
    assert _inbox_rows() == 0


def test_an_event_type_siyu_does_not_handle_is_stored_and_answered_200(http):
    headers, body = signed_notification({"mchid": SANDBOX_MCH_ID, "whatever": 1}, event_type="PROFITSHARING.SUCCESS",
                                        original_type="profitsharing")
    assert http.post("/webhooks/wechatpay", content=body, headers=headers).status_code == 200
    drain()
    with inbox_scope() as s:
        row = s.scalar(select(InboxEvent).where(InboxEvent.source == "wechatpay"))
    assert row.status == "unhandled" and json.loads(row.payload)["whatever"] == 1
