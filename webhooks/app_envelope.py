"""The official account's and the mini-program's callback envelope: plain mode and safe (AES) mode.

Plain mode signs (token, timestamp, nonce) as `signature`; safe mode adds `encrypt_type=aes` and signs
the ciphertext too as `msg_signature`. The mini-program may send XML or JSON. With an EncodingAESKey
configured only safe mode is taken: plain mode signs no body. Either way the timestamp must be fresh,
and nothing of the body is parsed before its signature holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from webhooks.crypto import (BadPayload, BadSignature, WrongReceiver, check_signature, decrypt, encrypt_reply,
                             extract_encrypt, parse_body)
from webhooks.inbox import storable
from webhooks.intake import credentials, reject
from webhooks.replay import Delivery, delivery, fresh_timestamp


class PlainModeRefused(BadSignature):
    """A plain-mode request to a channel with an EncodingAESKey: only safe mode is taken (answer 403)."""

    reason = "plain_mode"


@dataclass(frozen=True)
class Opened:
    plaintext: str
    data: dict
    format: str  # xml or json
    safe: bool
    seen: Delivery  # for the nonce memory


def verify_echo(creds, signature: str | None, timestamp: str | None, nonce: str | None, echostr: str | None,
                *, now: float) -> str:
    """The echostr of a URL check, once its signature holds and its timestamp is fresh."""
    check_signature(signature, creds.token, timestamp, nonce)
    fresh_timestamp(timestamp, now)
    if echostr is None:
        raise BadPayload("no echostr")
    return echostr


def open_envelope(creds, source: str, body: bytes, *, signature: str | None, timestamp: str | None,
                  nonce: str | None, encrypt_type: str | None, msg_signature: str | None, now: float) -> Opened:
    """Check the signature and timestamp of a POST, then return its plaintext and fields."""
    safe = (encrypt_type or "").lower() == "aes"
    if safe:
        if not creds.aes_key:
            # Tencent signs safe-mode requests plainly too: an unsigned request is refused (403) as such
            # before we admit we cannot decrypt a signed one (400).
            check_signature(signature, creds.token, timestamp, nonce)
            raise BadPayload("safe mode without an EncodingAESKey configured")
        encrypted = extract_encrypt(body)
        check_signature(msg_signature, creds.token, timestamp, nonce, encrypted)
        seconds = fresh_timestamp(timestamp, now)
        plaintext = decrypt("app", creds.token, creds.aes_key, creds.app_id, encrypted)
    else:
        if creds.aes_key:
            raise PlainModeRefused("plain mode refused: an EncodingAESKey is configured, so only safe mode is")
        check_signature(signature, creds.token, timestamp, nonce)
        seconds = fresh_timestamp(timestamp, now)
        plaintext = body.decode("utf-8", "replace")
    data, fmt = parse_body(plaintext)
    # JSON escapes can carry NUL and lone surrogates; the passive reply must not trip over them either.
    return Opened(plaintext, storable(data), fmt, safe, delivery(source, nonce, seconds, plaintext))


def seal_reply(creds, opened: Opened, reply_xml: str, nonce: str | None, timestamp: str | None) -> str:
    """A passive reply as the sender expects it: plain, or encrypted in safe mode."""
    if not opened.safe:
        return reply_xml
    return encrypt_reply("app", creds.token, creds.aes_key, creds.app_id, reply_xml, nonce or "", timestamp or "")


def echo_or_reject(source: str, signature, timestamp, nonce, echostr, *, now: float) -> str:
    """The URL check's answer for `source` (official_account, miniprogram); 403/400 as an HTTP error."""
    try:
        return verify_echo(credentials(source), signature, timestamp, nonce, echostr, now=now)
    except (BadSignature, BadPayload) as exc:
        raise reject(source, exc) from None


def open_or_reject(source: str, body: bytes, *, now: float, **query) -> tuple[object, Opened]:
    """The credentials and opened POST of `source`; 403/400 as an HTTP error."""
    creds = credentials(source)
    try:
        return creds, open_envelope(creds, source, body, now=now, **query)
    except (BadSignature, WrongReceiver, BadPayload) as exc:
        raise reject(source, exc) from None
