"""The sandbox sends callbacks exactly as Tencent does."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from wechatpy.enterprise.crypto import WeChatCrypto

from bot.clients import mp_client, pay_client
from bot.credentials import oa_credentials, pay_credentials, wecom_credentials
from bot.sandbox import callbacks, events
from config.settings import get_settings

TENCENT_AES = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TENCENT_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkS"
    "UXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNX"
    "ZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA"
    "3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)


def test_the_cipher_reproduces_tencents_published_sample():
    # given Tencent's sample (VECTORS.md)
    assert callbacks.sha1_signature("QDG6eK", "1409659813", "1372623149", TENCENT_ENCRYPT) == \
        "477715d11cdb4164915debcba66cb864d751f3e6"
    # when
    plain = callbacks.decrypt(TENCENT_AES, "wx5823bf96d3bd56c7", TENCENT_ENCRYPT)
    # then
    root = ET.fromstring(plain)
    assert (root.findtext("Content"), root.findtext("MsgId"), root.findtext("FromUserName")) == \
        ("hello", "4561255354251345929", "mycreate")
    with pytest.raises(ValueError):
        callbacks.decrypt(TENCENT_AES, "wrongcorp", TENCENT_ENCRYPT)


def test_a_wecom_event_arrives_encrypted_and_signed_as_wecom_sends_it(sandbox, captured):
    # given
    settings = get_settings()
    creds = wecom_credentials(settings)
    plain = events.add_external_contact(creds.corp_id, "zhangsan", "wmABC", state="s1", welcome_code="wc1")
    # when
    res = callbacks.send_wecom_event(f"{settings.public_url}capture/wecom", creds, plain)
    # then: wechatpy's own WeCom crypto (what a receiver uses) verifies and decrypts it
    assert res.status_code == 200
    got = captured[0]
    root = ET.fromstring(got["body"])
    assert root.findtext("ToUserName") == creds.corp_id and root.findtext("Encrypt")
    crypto = WeChatCrypto(creds.token, creds.aes_key, creds.corp_id)
    q = got["query"]
    decrypted = crypto.decrypt_message(got["body"].decode(), q["msg_signature"], q["timestamp"], q["nonce"])
    fields = {e.tag: e.text for e in ET.fromstring(decrypted)}
    assert fields | {"CreateTime": None} == {
        "ToUserName": creds.corp_id, "FromUserName": "sys", "CreateTime": None, "MsgType": "event",
        "Event": "change_external_contact", "ChangeType": "add_external_contact", "UserID": "zhangsan",
        "ExternalUserID": "wmABC", "State": "s1", "WelcomeCode": "wc1"}


def test_oa_events_plain_and_safe_mode(sandbox, captured):
    settings = get_settings()
    creds = oa_credentials(settings)
    plain = events.oa_subscribe("oOPEN", scene_str="store1")
    callbacks.send_oa_event(f"{settings.public_url}capture/oa", creds, plain, "oOPEN", safe_mode=False)
    callbacks.send_oa_event(f"{settings.public_url}capture/oa", creds, plain, "oOPEN", safe_mode=True)
    first, second = captured
    q = first["query"]
    assert q["signature"] == callbacks.sha1_signature(creds.token, q["timestamp"], q["nonce"])
    assert ET.fromstring(first["body"]).findtext("EventKey") == "qrscene_store1"
    q2 = second["query"]
    enc = ET.fromstring(second["body"]).findtext("Encrypt")
    assert q2["encrypt_type"] == "aes"
    assert q2["msg_signature"] == callbacks.sha1_signature(creds.token, q2["timestamp"], q2["nonce"], enc)
    assert callbacks.decrypt(creds.aes_key, creds.app_id, enc) == plain


def test_pay_round_trip_with_a_signed_notification(sandbox, captured):
    # given: a prepaid order whose notify_url is the capture endpoint
    settings = get_settings()
    pay = pay_client()
    openid = sandbox.add_mp_user()
    prepay = pay.jsapi_prepay(mp_client().creds.app_id, "拼团", "T0001", 990, openid,
                              f"{settings.public_url}capture/pay")
    assert prepay["prepay_id"].startswith("wx")
    assert pay.query_order("T0001")["trade_state"] == "NOTPAY"
    params = pay.jsapi_pay_params(mp_client().creds.app_id, prepay["prepay_id"])
    assert params["package"] == f"prepay_id={prepay['prepay_id']}" and params["signType"] == "RSA"
    # when: the consumer pays
    callbacks.notify_paid("T0001")
    # then: the notification verifies on the raw body and decrypts to the paid order
    got = captured[0]
    note = pay.parse_notification(got["headers"], got["body"])
    assert note["event_type"] == "TRANSACTION.SUCCESS"
    assert note["resource"]["out_trade_no"] == "T0001" and note["resource"]["trade_state"] == "SUCCESS"
    tampered = got["body"].replace(b'"summary":"', b'"summary":"x')
    from bot.pay_crypto import PaySignatureError

    with pytest.raises(PaySignatureError):
        pay.parse_notification(got["headers"], tampered)
    # and refunds and close behave like Pay v3
    refund = pay.refund("T0001", "R0001", 500, 990, reason="团未成")
    assert refund["status"] == "PROCESSING" and refund["amount"]["refund"] == 500
    assert pay.refund("T0001", "R0001", 500, 990)["refund_id"] == refund["refund_id"]  # the same out_refund_no: one
    assert pay.query_refund("R0001")["status"] == "PROCESSING"
    from bot.sandbox.pay_state import REFUND_SETTLES_AFTER
    from bot.sandbox.state import get_state

    get_state().advance(REFUND_SETTLES_AFTER + 1)
    settled = pay.query_refund("R0001")
    assert settled["status"] == "SUCCESS" and settled["success_time"] and "_settle_at" not in settled
    from bot.errors import PermanentAPIError

    with pytest.raises(PermanentAPIError) as exc:
        pay.refund("T0001", "R0002", 600, 990)
    assert exc.value.errcode == "PARAM_ERROR"
    pay.jsapi_prepay(mp_client().creds.app_id, "拼团", "T0003", 100, openid, f"{settings.public_url}capture/pay")
    assert pay.close_order("T0003") == {}
    assert pay.query_order("T0003")["trade_state"] == "CLOSED"
    assert pay_credentials(settings).sandbox
    assert json.loads(got["body"])["resource"]["algorithm"] == "AEAD_AES_256_GCM"
