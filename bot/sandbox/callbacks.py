"""The sandbox as a sender: encrypted WeCom events, OA events (plain and safe mode) and signed Pay v3
notifications, POSTed to Siyu exactly as Tencent sends them. `make demo` and end-to-end tests drive this.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
import httpx
from wechatpy.enterprise.crypto import PrpCrypto

from bot import pay_crypto as pc
from bot.credentials import PayCredentials, WeChatAppCredentials, WeComCredentials

TIMEOUT = 10.0


def _aes_key(encoding_aes_key: str) -> bytes:
    import base64

    return base64.b64decode(encoding_aes_key + "=")


def sha1_signature(*parts: str) -> str:
    """Tencent's callback signature: SHA-1 of the sorted parts concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def encrypt(encoding_aes_key: str, receive_id: str, plaintext: str) -> str:
    """WXBizMsgCrypt ciphertext (random 16 bytes, length, message, receiveid; PKCS#7 to 32; AES-CBC)."""
    return PrpCrypto(_aes_key(encoding_aes_key)).encrypt(plaintext, receive_id).decode()


def decrypt(encoding_aes_key: str, receive_id: str, ciphertext: str) -> str:
    """The plaintext of WXBizMsgCrypt ciphertext; ValueError when the receiveid does not match."""
    try:
        return PrpCrypto(_aes_key(encoding_aes_key)).decrypt(ciphertext, receive_id)
    except Exception as exc:  # wechatpy raises its own exception types
        raise ValueError(f"does not decrypt for {receive_id}: {type(exc).__name__}") from None


def wecom_envelope(creds: WeComCredentials, plaintext_xml: str, timestamp: str | None = None,
                   nonce: str | None = None, agent_id: str | None = None) -> tuple[dict, bytes]:
    """The query parameters and body WeCom POSTs for one event."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    enc = encrypt(creds.aes_key, creds.corp_id, plaintext_xml)
    body = (f"<xml><ToUserName><![CDATA[{creds.corp_id}]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt>"
            f"<AgentID><![CDATA[{agent_id or creds.agent_id or ''}]]></AgentID></xml>")
    params = {"msg_signature": sha1_signature(creds.token, timestamp, nonce, enc),
              "timestamp": timestamp, "nonce": nonce}
    return params, body.encode()


def send_wecom_event(siyu_url: str, creds: WeComCredentials, plaintext_xml: str,
                     client: httpx.Client | None = None, **envelope) -> httpx.Response:
    """POST one encrypted WeCom event to Siyu's /webhooks/wecom."""
    params, body = wecom_envelope(creds, plaintext_xml, **envelope)
    return _post(client, siyu_url, params, body, {"Content-Type": "text/xml"})


def verify_wecom_url(siyu_url: str, creds: WeComCredentials, echo: str = "1616140317555161061",
                     client: httpx.Client | None = None) -> httpx.Response:
    """The GET WeCom makes when the callback URL is saved; Siyu must answer `echo` alone."""
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    echostr = encrypt(creds.aes_key, creds.corp_id, echo)
    params = {"msg_signature": sha1_signature(creds.token, timestamp, nonce, echostr),
              "timestamp": timestamp, "nonce": nonce, "echostr": echostr}
    if client is not None:
        return client.get(siyu_url, params=params)
    return httpx.get(siyu_url, params=params, timeout=TIMEOUT)


def send_oa_event(siyu_url: str, creds: WeChatAppCredentials, plaintext_xml: str, openid: str,
                  safe_mode: bool | None = None, client: httpx.Client | None = None) -> httpx.Response:
    """POST one official-account message or event, in plain mode or safe (encrypted) mode.

    By default the mode is the one Tencent uses for these credentials: safe when they carry an EncodingAESKey.
    """
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    params = {"signature": sha1_signature(creds.token, timestamp, nonce), "timestamp": timestamp,
              "nonce": nonce, "openid": openid}
    body = plaintext_xml
    if safe_mode is None:
        safe_mode = bool(creds.aes_key)
    if safe_mode:
        enc = encrypt(creds.aes_key, creds.app_id, plaintext_xml)
        params.update(encrypt_type="aes", msg_signature=sha1_signature(creds.token, timestamp, nonce, enc))
        body = f"<xml><ToUserName><![CDATA[gh_sandbox]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    return _post(client, siyu_url, params, body.encode(), {"Content-Type": "text/xml"})


def open_oa_reply(creds: WeChatAppCredentials, answer: str) -> str:
    """The plaintext of a passive reply as the OA's user sees it (decrypted when Siyu answered in safe mode)."""
    start, end = answer.find("<Encrypt><![CDATA["), answer.find("]]></Encrypt>")
    if start < 0 or end < 0:
        return answer
    return decrypt(creds.aes_key, creds.app_id, answer[start + len("<Encrypt><![CDATA["):end])


def pay_notification(creds: PayCredentials, platform_key_path: str, resource: dict,
                     event_type: str = "TRANSACTION.SUCCESS", original_type: str = "transaction") -> tuple[dict, bytes]:
    """Headers and body of a Pay v3 notification: resource AEAD-encrypted, body signed with the platform key."""
    enc = pc.aead_encrypt(creds.apiv3_key, json.dumps(resource, ensure_ascii=False).encode(), original_type)
    summary = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功"}.get(event_type, event_type)
    envelope = {"id": secrets.token_hex(18), "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00",
                                                                           time.gmtime(time.time() + 8 * 3600)),
                "resource_type": "encrypt-resource", "event_type": event_type, "summary": summary,
                "resource": {**enc, "original_type": original_type}}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    headers = pc.response_headers(pc.load_private_key(platform_key_path), creds.public_key_id, body)
    headers["Content-Type"] = "application/json"
    return headers, body


def send_pay_notification(notify_url: str, creds: PayCredentials, platform_key_path: str, resource: dict,
                          event_type: str = "TRANSACTION.SUCCESS", original_type: str = "transaction",
                          client: httpx.Client | None = None) -> httpx.Response:
    """POST a signed Pay v3 notification to `notify_url`."""
    headers, body = pay_notification(creds, platform_key_path, resource, event_type, original_type)
    if client is not None:
        return client.post(notify_url, content=body, headers=headers)
    return httpx.post(notify_url, content=body, headers=headers, timeout=TIMEOUT)


def _post(client, url, params, body: bytes, headers) -> httpx.Response:
    if client is not None:
        return client.post(url, params=params, content=body, headers=headers)
    return httpx.post(url, params=params, content=body, headers=headers, timeout=TIMEOUT)


def notify_paid(out_trade_no: str, settings=None, client: httpx.Client | None = None) -> httpx.Response:
    """The consumer pays a sandbox order: mark it paid and POST TRANSACTION.SUCCESS to its notify_url."""
    from bot.credentials import sandbox_file, sandbox_pay_credentials
    from bot.sandbox.store import shared
    from config.settings import get_settings

    settings = settings or get_settings()
    with shared() as state:
        order = state.pay_order(out_trade_no)
    resource = {k: v for k, v in order.items() if not k.startswith("_")}
    creds = sandbox_pay_credentials(settings)
    return send_pay_notification(order["_notify_url"], creds, str(sandbox_file(settings, "pay_platform_key.pem")),
                                 resource, client=client)


def notify_refunded(out_refund_no: str, notify_url: str | None = None, refund_status: str = "SUCCESS", settings=None,
                    client: httpx.Client | None = None) -> httpx.Response:
    """A sandbox refund ends now (unless it ended before) with `refund_status`: POST the signed REFUND.*
    notification WeChat Pay sends to `notify_url` (default: the one the refund call gave)."""
    from bot.sandbox.store import shared

    with shared() as state:
        rec = state.settle_refund(out_refund_no, refund_status)
        resource = state.refund_resource(out_refund_no)
    return _send_refund(notify_url or rec["_notify_url"], resource, settings, client)


def settle_refunds(settings=None, client: httpx.Client | None = None) -> list[httpx.Response]:
    """WeChat Pay's side of time passing: every PROCESSING refund whose time has come succeeds, and its
    REFUND.SUCCESS notification goes to the notify_url of its refund call; what each notify_url answered."""
    from bot.sandbox.store import shared

    with shared() as state:
        due = [(state.pay_refunds[no]["_notify_url"], state.refund_resource(no)) for no in state.due_refunds()]
    return [_send_refund(url, resource, settings, client) for url, resource in due if url]


def _send_refund(notify_url: str, resource: dict, settings, client) -> httpx.Response:
    from bot.credentials import sandbox_file, sandbox_pay_credentials
    from config.settings import get_settings

    settings = settings or get_settings()
    creds = sandbox_pay_credentials(settings)
    return send_pay_notification(notify_url, creds, str(sandbox_file(settings, "pay_platform_key.pem")), resource,
                                 event_type=f"REFUND.{resource['refund_status']}", original_type="refund",
                                 client=client)
