"""Intake: verify → persist → enqueue → 200; refusals store nothing; duplicates change nothing."""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from urllib.parse import urlencode

from prometheus_client import REGISTRY

from tests.webhooks.conftest import fixture_text, inbox_rows, wecom_creds, wecom_post

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")


def _rejected(source: str, reason: str) -> float:
    return REGISTRY.get_sample_value("siyu_webhook_rejected_total", {"source": source, "reason": reason}) or 0.0


def test_an_add_event_is_stored_enqueued_and_its_welcome_goes_on_the_fast_queue(client, enqueued):
    # given an encrypted add_external_contact event, when WeCom delivers it
    r = wecom_post(client, wecom_creds(), ADD)
    # then 200 with an empty body, one row keyed by the plaintext's hash, the job and the welcome enqueued
    assert r.status_code == 200 and r.text == ""
    [row] = inbox_rows()
    assert row.content_key == "wecom:sha256:" + hashlib.sha256(ADD.encode()).hexdigest()
    assert (row.msg_type, row.event, row.change_type) == ("event", "change_external_contact", "add_external_contact")
    assert row.status == "received" and row.payload == ADD
    assert enqueued == [("process_inbox", (row.id,), "default"), ("send_welcome", (row.id,), "fast")]


def test_a_repeated_delivery_is_answered_200_and_changes_nothing(client, enqueued):
    # given an event already delivered
    wecom_post(client, wecom_creds(), ADD)
    before = [(r.id, r.status, r.received_at) for r in inbox_rows()]
    # when WeCom retries it (new nonce, new ciphertext, same plaintext)
    r = wecom_post(client, wecom_creds(), ADD)
    # then 200, still one row, nothing enqueued again
    assert r.status_code == 200
    assert [(r.id, r.status, r.received_at) for r in inbox_rows()] == before
    assert len(enqueued) == 2


def test_two_customers_added_in_the_same_second_are_two_events(client, enqueued):
    # given two add events from `sys` with one CreateTime, differing only in the customer
    other = ADD.replace("wmEXT0001", "wmEXT0002").replace("WELCOMECODE0001", "WELCOMECODE0009")
    # when both arrive
    wecom_post(client, wecom_creds(), ADD)
    wecom_post(client, wecom_creds(), other)
    # then both are kept (FromUserName + CreateTime is no key)
    assert len(inbox_rows()) == 2


def test_a_wrong_signature_is_403_and_stores_nothing_but_a_counter(client, enqueued):
    creds = wecom_creds()
    before = _rejected("wecom", "signature")
    # given a well-formed encrypted body, when its msg_signature is wrong
    nonce, timestamp = "123", str(int(time.time()))
    from webhooks.crypto import encrypt_reply, parse_xml

    enc = parse_xml(encrypt_reply("wecom", creds.token, creds.aes_key, creds.corp_id, ADD, nonce, timestamp))
    body = f"<xml><Encrypt><![CDATA[{enc['Encrypt']}]]></Encrypt></xml>"
    q = urlencode({"msg_signature": "0" * 40, "timestamp": timestamp, "nonce": nonce})
    r = client.post(f"/webhooks/wecom?{q}", content=body)
    # then 403, no row, no job, and the rejection is counted
    assert r.status_code == 403
    assert inbox_rows() == [] and enqueued == []
    assert _rejected("wecom", "signature") == before + 1


def test_a_missing_signature_is_403(client, enqueued):
    r = client.post("/webhooks/wecom", content="<xml><Encrypt><![CDATA[abcd]]></Encrypt></xml>")
    assert r.status_code == 403 and inbox_rows() == []


def test_a_garbage_body_is_400(client, enqueued):
    # given bodies that are not XML or carry no ciphertext, when posted, then 400 and nothing stored
    for body in (b"\x00\xffnot xml at all", b"<xml><ToUserName>x</ToUserName></xml>", b"<xml><Encrypt>"):
        r = client.post("/webhooks/wecom?msg_signature=a&timestamp=1&nonce=2", content=body)
        assert r.status_code == 400, body
    assert inbox_rows() == []


def test_a_signed_ciphertext_that_does_not_decrypt_is_400(client, enqueued):
    from webhooks.crypto import signature

    creds = wecom_creds()
    # given a correctly signed Encrypt that is not valid AES output
    bogus = "c2hvcnQ="
    q = urlencode({"msg_signature": signature(creds.token, "1", "2", bogus), "timestamp": "1", "nonce": "2"})
    r = client.post(f"/webhooks/wecom?{q}", content=f"<xml><Encrypt><![CDATA[{bogus}]]></Encrypt></xml>")
    # then 400 and nothing stored
    assert r.status_code == 400 and inbox_rows() == []


def test_an_unknown_event_is_stored_answered_200_and_counted_as_unhandled(client, drain):
    from prometheus_client import REGISTRY

    # given an event type Siyu has no handler for
    unknown = ADD.replace("change_external_contact", "change_contact").replace("add_external_contact", "create_user")
    key = {"source": "wecom", "kind": "event/change_contact/create_user"}
    before = REGISTRY.get_sample_value("siyu_webhook_unhandled_total", key) or 0
    # when it arrives and the worker takes it
    r = wecom_post(client, wecom_creds(), unknown)
    drain()
    # then 200, the row is kept as unhandled, and counted
    assert r.status_code == 200
    [row] = inbox_rows()
    assert row.status == "unhandled" and row.event == "change_contact"
    assert REGISTRY.get_sample_value("siyu_webhook_unhandled_total", key) == before + 1


# -- official account and mini-program ---------------------------------------------------------------------------
def _app_creds(channel: str):
    from bot.credentials import mp_credentials, oa_credentials
    from config.settings import get_settings

    return (oa_credentials if channel == "official_account" else mp_credentials)(get_settings())


def _plain_query(creds, nonce="n1", timestamp=None):
    from webhooks.crypto import signature

    timestamp = timestamp or str(int(time.time()))
    return {"signature": signature(creds.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


def test_oa_url_check_echoes_and_a_wrong_signature_is_403(client):
    creds = _app_creds("official_account")
    r = client.get("/webhooks/official-account", params={**_plain_query(creds), "echostr": "hello123"})
    assert r.status_code == 200 and r.text == "hello123"
    bad = client.get("/webhooks/official-account",
                     params={**_plain_query(creds), "signature": "f" * 40, "echostr": "x"})
    assert bad.status_code == 403


def test_oa_plain_mode_message_is_stored_under_its_msgid(plain_apps, client, enqueued):
    creds = _app_creds("official_account")
    text = fixture_text("official_account", "text.xml")
    # given a plain-mode text message, when delivered twice
    for _ in range(2):
        r = client.post("/webhooks/official-account", params=_plain_query(creds), content=text)
        assert r.status_code == 200
    # then one row keyed by MsgId
    [row] = inbox_rows()
    assert row.content_key == "official_account:msg:23456789012345678" and row.source == "official_account"
    assert len(enqueued) == 1


def test_oa_plain_mode_with_a_wrong_signature_stores_nothing(plain_apps, client, enqueued):
    creds = _app_creds("official_account")
    q = {**_plain_query(creds), "signature": "0" * 40}
    r = client.post("/webhooks/official-account", params=q, content=fixture_text("official_account", "text.xml"))
    assert r.status_code == 403 and inbox_rows() == []


def _safe_post(client, channel, path, plaintext, *, as_json=False, tamper=False):
    from webhooks.crypto import encrypt_reply, parse_xml

    creds = _app_creds(channel)
    nonce, timestamp = secrets.token_hex(4), str(int(time.time()))
    sealed = parse_xml(encrypt_reply("app", creds.token, creds.aes_key, creds.app_id, plaintext, nonce, timestamp))
    q = {**_plain_query(creds, nonce, timestamp), "encrypt_type": "aes",
         "msg_signature": "0" * 40 if tamper else sealed["MsgSignature"]}
    if as_json:
        body = json.dumps({"ToUserName": "gh_x", "Encrypt": sealed["Encrypt"]})
    else:
        body = f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
    return client.post(path, params=q, content=body), creds, nonce, timestamp


def test_oa_safe_mode_is_decrypted_and_a_keyword_rule_answers_encrypted(client, enqueued):
    from tests.webhooks.conftest import ADMIN
    from webhooks.crypto import check_signature, decrypt, parse_xml

    # given a keyword rule and a safe-mode text message matching it
    rule = {"keywords": ["营业"], "match": "contains", "reply_text": "每天 10:00–22:00 营业"}
    assert client.post("/api/v1/auto-replies", json=rule, headers=ADMIN).status_code == 201
    text = fixture_text("official_account", "text.xml")
    # when it arrives
    r, creds, nonce, timestamp = _safe_post(client, "official_account", "/webhooks/official-account", text)
    # then it is stored decrypted, and the passive reply is the rule's text, encrypted and signed for the OA
    assert r.status_code == 200
    [row] = inbox_rows()
    assert row.data["Content"] == "请问门店几点营业"
    envelope = parse_xml(r.content)
    check_signature(envelope["MsgSignature"], creds.token, envelope["TimeStamp"], envelope["Nonce"],
                    envelope["Encrypt"])
    reply = parse_xml(decrypt("app", creds.token, creds.aes_key, creds.app_id, envelope["Encrypt"]))
    assert reply["Content"] == "每天 10:00–22:00 营业" and reply["ToUserName"] == "oFOLLOWER0001"


def test_oa_safe_mode_with_a_wrong_msg_signature_is_403(client, enqueued):
    r, *_ = _safe_post(client, "official_account", "/webhooks/official-account",
                       fixture_text("official_account", "text.xml"), tamper=True)
    assert r.status_code == 403 and inbox_rows() == []


def test_oa_text_without_a_matching_rule_is_answered_success(plain_apps, client, enqueued):
    creds = _app_creds("official_account")
    r = client.post("/webhooks/official-account", params=_plain_query(creds),
                    content=fixture_text("official_account", "text.xml"))
    assert r.status_code == 200 and r.text == "success"


def test_mp_json_and_xml_in_plain_and_safe_mode_are_stored(client, enqueued, monkeypatch):
    from tests.webhooks.conftest import configure_plain_apps

    # given the same kind of message as safe XML and safe JSON (the sandbox's mini-program has a key)
    xml = fixture_text("miniprogram", "text.xml")
    js = fixture_text("miniprogram", "text@json.json")
    r1, *_ = _safe_post(client, "miniprogram", "/webhooks/miniprogram", xml.replace("3345", "5345"))
    r2, *_ = _safe_post(client, "miniprogram", "/webhooks/miniprogram", js.replace("4345", "6345"), as_json=True)
    assert r1.status_code == 200 and r2.status_code == 200
    # and as plain XML and plain JSON to a mini-program configured without a key
    configure_plain_apps(monkeypatch)
    creds = _app_creds("miniprogram")
    assert client.post("/webhooks/miniprogram", params=_plain_query(creds), content=xml).status_code == 200
    assert client.post("/webhooks/miniprogram", params=_plain_query(creds, "n2"), content=js).status_code == 200
    # then all four are stored, each under its MsgId
    keys = sorted(r.content_key for r in inbox_rows())
    assert keys == sorted(["miniprogram:msg:33456789012345678", "miniprogram:msg:43456789012345678",
                           "miniprogram:msg:53456789012345678", "miniprogram:msg:63456789012345678"])
    assert all(r.data["Content"] == "拼团怎么参加" for r in inbox_rows())


def test_mp_garbage_is_400_and_wrong_signature_403(plain_apps, client, enqueued):
    creds = _app_creds("miniprogram")
    assert client.post("/webhooks/miniprogram", params=_plain_query(creds), content=b"{not json").status_code == 400
    bad = {**_plain_query(creds), "signature": "1" * 40}
    assert client.post("/webhooks/miniprogram", params=bad,
                       content=fixture_text("miniprogram", "text.xml")).status_code == 403
    assert inbox_rows() == []


def test_oa_safe_mode_without_a_configured_key_is_403_unsigned_and_400_signed(settings, monkeypatch, enqueued):
    from fastapi.testclient import TestClient

    from config.settings import get_settings
    from siyu.app import create_app
    from webhooks.crypto import signature

    # given a real official account configured in plain mode only (no EncodingAESKey)
    for name, value in (("SIYU_OA_APP_ID", "wxplainonly"), ("SIYU_OA_APP_SECRET", "s"), ("SIYU_OA_TOKEN", "tok")):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    body = "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[AAAA]]></Encrypt></xml>"
    q = {"timestamp": "1700000000", "nonce": "n1", "encrypt_type": "aes", "msg_signature": "0" * 40}
    with TestClient(create_app()) as c:
        # when a safe-mode request arrives unsigned, then it is refused as unsigned
        unsigned = c.post("/webhooks/official-account", params={**q, "signature": "f" * 40}, content=body)
        # and when it is signed, then it is refused as undecryptable
        signed = c.post("/webhooks/official-account",
                        params={**q, "signature": signature("tok", "1700000000", "n1")}, content=body)
    assert (unsigned.status_code, signed.status_code) == (403, 400)
    assert inbox_rows() == []
