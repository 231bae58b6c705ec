"""Callback signatures (checked in constant time) and the AES envelope, on wechatpy's cipher.

wechatpy compares signatures with `!=`; Siyu checks them itself with `hmac.compare_digest` and only
then asks wechatpy to decrypt. WeCom pads to 32 bytes and ends the plaintext with the receiveid
(corp id); the official account and the mini-program end it with the app id.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import struct

import xmltodict
from wechatpy.crypto import PrpCrypto as AppPrpCrypto
from wechatpy.crypto import WeChatCrypto as AppCrypto
from wechatpy.enterprise.crypto import PrpCrypto as CorpPrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as CorpCrypto


class BadSignature(Exception):
    """The signature does not match: the caller does not know the Token (answer 403)."""


class WrongReceiver(Exception):
    """The plaintext names another corp or app as its receiver (answer 403)."""


class BadPayload(Exception):
    """The body does not parse or decrypt (answer 400)."""


def signature(token: str, *parts: str) -> str:
    """WeChat's SHA-1 over the sorted token, timestamp, nonce (and ciphertext)."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


def check_signature(given: str | None, token: str | None, *parts: str | None) -> None:
    """Raise BadSignature unless `given` is the signature of the parts (constant time)."""
    if not token:  # a channel without a Token can verify nothing: refused like a wrong signature, never a 500
        raise BadSignature("no callback Token configured")
    if not given or any(p is None for p in parts):
        raise BadSignature("missing signature parameters")
    expected = signature(token, *parts)
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8", "replace")):
        raise BadSignature("signature mismatch")


@functools.lru_cache(maxsize=16)
def _cipher(kind: str, token: str, aes_key: str, receiver: str):
    return (CorpCrypto if kind == "wecom" else AppCrypto)(token, aes_key, receiver)


def decrypt(kind: str, token: str, aes_key: str, receiver: str, ciphertext: str) -> str:
    """The plaintext of an (already signature-checked) ciphertext; WrongReceiver or BadPayload otherwise."""
    if not aes_key:
        raise BadPayload("no EncodingAESKey configured")
    crypto = _cipher(kind, token, aes_key, receiver)
    prp = (CorpPrpCrypto if kind == "wecom" else AppPrpCrypto)(crypto.key)
    try:
        raw = prp.cipher.decrypt(base64.b64decode(ciphertext, validate=True))
        pad = raw[-1]
        if not 1 <= pad <= 32 or len(raw) < 20 + pad:
            raise ValueError(f"bad padding {pad}")
        content = raw[16:-pad]
        (length,) = struct.unpack(">I", content[:4])
        if length > len(content) - 4:
            raise ValueError("length beyond the plaintext")
        text = content[4:4 + length].decode("utf-8")
        from_id = content[4 + length:].decode("utf-8")
    except (ValueError, UnicodeDecodeError, struct.error, IndexError) as exc:
        raise BadPayload(f"does not decrypt: {exc}") from None
    if not hmac.compare_digest(from_id.encode(), receiver.encode()):
        raise WrongReceiver(f"receiveid {from_id!r} is not ours")
    return text


def encrypt_reply(kind: str, token: str, aes_key: str, receiver: str, plaintext: str, nonce: str,
                  timestamp: str) -> str:
    """A passive reply in safe mode: the encrypted, signed XML envelope."""
    return _cipher(kind, token, aes_key, receiver).encrypt_message(plaintext, nonce, timestamp)


def parse_xml(body: bytes | str) -> dict:
    """The children of an XML document's root (nested elements as dicts); BadPayload when it is not one."""
    try:
        doc = xmltodict.parse(body, disable_entities=True)
    except Exception as exc:  # expat raises several types
        raise BadPayload(f"not XML: {exc.__class__.__name__}") from None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise BadPayload("not one XML document")
    root = next(iter(doc.values()))
    if not isinstance(root, dict):
        raise BadPayload("XML root has no fields")
    return root


def parse_json(body: bytes | str) -> dict:
    """A JSON object body; BadPayload otherwise."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise BadPayload("not JSON") from None
    if not isinstance(doc, dict):
        raise BadPayload("JSON body is not an object")
    return doc


def parse_body(body: bytes | str) -> tuple[dict, str]:
    """The fields of an XML or JSON body and which it was ("xml" or "json")."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if text.lstrip().startswith("{"):
        return parse_json(text), "json"
    return parse_xml(text), "xml"
