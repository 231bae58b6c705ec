"""Secrets and phones stay out of the intake's answers and stored errors; a channel without a Token refuses, no 500."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from bot.sandbox.serve import free_port
from config.database import session_scope
from config.settings import get_settings
from tests.webhooks.conftest import ADMIN, fixture_text, inbox_rows, wecom_creds, wecom_post

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")
OA_SECRET = "oaAppSecret0123456789abcd"
TOKEN = "AccessToken0123456789abcdefXYZ"
PHONE = "+8613800138000"
LEAKY = f"GET http://api/cgi-bin/externalcontact/get?access_token={TOKEN} for {PHONE} failed"


def test_a_502_from_tencent_names_no_secret(settings, monkeypatch):
    from fastapi.testclient import TestClient

    from bot.clients import reset_clients
    from siyu.app import create_app

    # given a real official account whose API base is down
    for name, value in (("SIYU_OA_APP_ID", "wxoa0000000000001"), ("SIYU_OA_APP_SECRET", OA_SECRET),
                        ("SIYU_OA_TOKEN", "oatoken"), ("SIYU_WECHAT_API_BASE", f"http://127.0.0.1:{free_port()}/")):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    reset_clients()
    try:
        with TestClient(create_app()) as c:
            c.post("/api/v1/stores", json={"code": "S001", "name": "静安店"}, headers=ADMIN)
            # when a QR code is asked for, so a token must be fetched with ?secret=
            r = c.post("/api/v1/oa-qrcodes", json={"store": "S001", "name": "海报"}, headers=ADMIN)
    finally:
        reset_clients()
    # then 502 says Tencent could not be reached, and names no secret
    assert r.status_code == 502 and "ConnectionError" in r.text
    assert OA_SECRET not in r.text and "secret=***" in r.text


def test_a_failed_handler_stores_its_traceback_without_secrets_or_phones(client, enqueued, fake_wecom, monkeypatch):
    from webhooks.inbox import process_inbox

    # given a handler whose failure text carries an access token and a phone
    monkeypatch.setattr(fake_wecom, "get_external_contact", lambda *a, **k: (_ for _ in ()).throw(RuntimeError(LEAKY)))
    wecom_post(client, wecom_creds(), ADD)
    [row] = inbox_rows()
    # when it fails
    with pytest.raises(RuntimeError):
        process_inbox(row.id)
    # then the stored error keeps the traceback and what failed, redacted
    [row] = inbox_rows()
    assert "Traceback" in row.error and "access_token=***" in row.error and "+86138****8000" in row.error
    assert TOKEN not in row.error and PHONE not in row.error


def test_a_send_whose_outcome_is_unknown_stores_a_redacted_error(settings):
    from bot.errors import TransportError
    from bot.models import OutboundSend
    from bot.sends import send_once

    # given a send that fails in a way whose text carries a token and a phone (not one bot made)
    def send():
        raise OSError(LEAKY)

    # when it is tried, then it is recorded unknown, with the error redacted
    with pytest.raises(OSError):
        send_once(key="welcome:CODE1", cause=None, send=send)
    # and the same for a transport failure bot reports
    assert send_once(key="welcome:CODE2", cause=None,
                     send=lambda: (_ for _ in ()).throw(TransportError(None, LEAKY, "x"))) == "unknown"
    with session_scope() as s:
        errors = list(s.scalars(select(OutboundSend.error).order_by(OutboundSend.id)))
    assert len(errors) == 2 and all("access_token=***" in e for e in errors)
    assert not [e for e in errors if TOKEN in e or PHONE in e], errors


@pytest.mark.parametrize(("source", "path"), [("wecom", "/webhooks/wecom"),
                                              ("official_account", "/webhooks/official-account"),
                                              ("miniprogram", "/webhooks/miniprogram")])
def test_a_channel_without_a_callback_token_refuses_with_403_never_500(client, enqueued, monkeypatch, source, path):
    from webhooks import intake

    # given a channel whose effective credentials have no Token (settings refuse this at start-up; defensively)
    creds = dataclasses.replace(intake.credentials(source), token=None)
    monkeypatch.setattr(intake, "credentials", lambda channel: creds)
    monkeypatch.setattr("webhooks.app_envelope.credentials", lambda channel: creds)
    monkeypatch.setattr("webhooks.wecom.api.credentials", lambda channel: creds)
    query = {"signature": "0" * 40, "msg_signature": "0" * 40, "timestamp": "1700000000", "nonce": "n", "echostr": "e"}
    # when a URL check and a callback arrive, then both are refused as unverifiable and nothing is stored
    assert client.get(path, params=query).status_code == 403
    assert client.post(path, params=query, content="<xml><Encrypt><![CDATA[AAAA]]></Encrypt></xml>").status_code == 403
    assert inbox_rows() == []


def test_wecom_without_an_aes_key_answers_400_never_500(client, enqueued, monkeypatch):
    from webhooks.crypto import signature

    # given WeCom credentials without an EncodingAESKey (defensively: settings refuse this at start-up)
    creds = dataclasses.replace(wecom_creds(), aes_key=None)
    monkeypatch.setattr("webhooks.wecom.api.credentials", lambda channel: creds)
    # when a correctly signed callback arrives, then it cannot be decrypted: 400, nothing stored
    q = {"msg_signature": signature(creds.token, "1700000000", "n", "AAAA"), "timestamp": "1700000000", "nonce": "n"}
    r = client.post("/webhooks/wecom", params=q, content="<xml><Encrypt><![CDATA[AAAA]]></Encrypt></xml>")
    assert r.status_code == 400 and inbox_rows() == []
