"""The official account's and the mini-program's callback envelope: plain mode and safe (AES) mode.

Plain mode signs (token, timestamp, nonce) as `signature`; safe mode adds `encrypt_type=aes` and signs
the ciphertext too as `msg_signature`. The mini-program may send XML or JSON.
"""
from __future__ import annotations

from dataclasses import dataclass

from webhooks.crypto import BadPayload, BadSignature, WrongReceiver, check_signature, decrypt, encrypt_reply, parse_body
from webhooks.intake import credentials, reject


@dataclass(frozen=True)
class Opened:
    plaintext: str
    data: dict
    format: str  # xml or json
    safe: bool


def verify_echo(creds, signature: str | None, timestamp: str | None, nonce: str | None, echostr: str | None) -> str:
    """The echostr of a URL check, once its signature holds."""
    check_signature(signature, creds.token, timestamp, nonce)
    if echostr is None:
        raise BadPayload("no echostr")
    return echostr


def open_envelope(creds, body: bytes, *, signature: str | None, timestamp: str | None, nonce: str | None,
                  encrypt_type: str | None, msg_signature: str | None) -> Opened:
    """Check the signature of a POST and return its plaintext and fields."""
    if (encrypt_type or "").lower() == "aes":
        if not creds.aes_key:
            # Tencent signs safe-mode requests plainly too: an unsigned request is refused (403) as such
            # before we admit we cannot decrypt a signed one (400).
            check_signature(signature, creds.token, timestamp, nonce)
            raise BadPayload("safe mode without an EncodingAESKey configured")
        outer, fmt = parse_body(body)
        encrypted = outer.get("Encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise BadPayload("no Encrypt field")
        check_signature(msg_signature, creds.token, timestamp, nonce, encrypted)
        plaintext = decrypt("app", creds.token, creds.aes_key, creds.app_id, encrypted)
        data, fmt = parse_body(plaintext)
        return Opened(plaintext, data, fmt, True)
    check_signature(signature, creds.token, timestamp, nonce)
    plaintext = body.decode("utf-8", "replace")
    data, fmt = parse_body(plaintext)
    return Opened(plaintext, data, fmt, False)


def seal_reply(creds, opened: Opened, reply_xml: str, nonce: str | None, timestamp: str | None) -> str:
    """A passive reply as the sender expects it: plain, or encrypted in safe mode."""
    if not opened.safe:
        return reply_xml
    return encrypt_reply("app", creds.token, creds.aes_key, creds.app_id, reply_xml, nonce or "", timestamp or "")


def echo_or_reject(source: str, signature, timestamp, nonce, echostr) -> str:
    """The URL check's answer for `source` (official_account, miniprogram); 403/400 as an HTTP error."""
    try:
        return verify_echo(credentials(source), signature, timestamp, nonce, echostr)
    except (BadSignature, BadPayload) as exc:
        raise reject(source, exc) from None


def open_or_reject(source: str, body: bytes, **query) -> tuple[object, Opened]:
    """The credentials and opened POST of `source`; 403/400 as an HTTP error."""
    creds = credentials(source)
    try:
        return creds, open_envelope(creds, body, **query)
    except (BadSignature, WrongReceiver, BadPayload) as exc:
        raise reject(source, exc) from None
