"""Callback signatures (checked in constant time) and the AES envelope, on wechatpy's cipher.

wechatpy compares signatures with `!=`; Siyu checks them itself with `hmac.compare_digest` and only
then asks wechatpy to decrypt. WeCom pads to 32 bytes and ends the plaintext with the receiveid
(corp id); the official account and the mini-program end it with the app id. Parsing raises nothing
but BadPayload, and refuses deep or huge documents while it reads them: an encrypted envelope's
ciphertext is taken out without parsing it at all, so only signed content is ever parsed.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import re
import struct
from xml.parsers import expat

import xmltodict
from wechatpy.crypto import PrpCrypto as AppPrpCrypto
from wechatpy.crypto import WeChatCrypto as AppCrypto
from wechatpy.enterprise.crypto import PrpCrypto as CorpPrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as CorpCrypto

from config.errors import DomainError, Forbidden


class BadSignature(Forbidden):
    """The signature does not match: the caller does not know the Token (answer 403)."""

    reason = "signature"  # the label of the rejection counter


class WrongReceiver(Forbidden):
    """The plaintext names another corp or app as its receiver (answer 403)."""

    reason = "receiver"


class BadPayload(DomainError):
    """The body does not parse or decrypt (answer 400)."""

    status_code = 400
    reason = "payload"


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


MAX_DEPTH = 32  # Tencent's callbacks nest five levels at most; deeper input is an attack, not a message
MAX_ELEMENTS = 10_000  # and hold dozens of elements; a flat megabyte of them is refused as it is read


class _BoundedExpat:
    """The `expat` xmltodict is given: its parsers refuse, as they read, more than MAX_DEPTH levels or MAX_ELEMENTS."""

    @staticmethod
    def ParserCreate(*args):  # noqa: N802 - expat's name
        return _BoundedParser(expat.ParserCreate(*args))


class _BoundedParser:
    """An expat parser whose element handlers count depth and elements before xmltodict's run."""

    def __init__(self, parser):
        self.__dict__.update(parser=parser, depth=0, elements=0)

    def __getattr__(self, name):
        return getattr(self.parser, name)

    def __setattr__(self, name, handler):
        if name == "StartElementHandler":
            handler = self._counting_start(handler)
        elif name == "EndElementHandler":
            handler = self._counting_end(handler)
        setattr(self.parser, name, handler)

    def _counting_start(self, handler):
        def start(*args):
            state = self.__dict__
            state["depth"] += 1
            state["elements"] += 1
            if state["depth"] > MAX_DEPTH:
                raise BadPayload(f"XML nested deeper than {MAX_DEPTH}")
            if state["elements"] > MAX_ELEMENTS:
                raise BadPayload(f"XML of more than {MAX_ELEMENTS} elements")
            handler(*args)
        return start

    def _counting_end(self, handler):
        def end(*args):
            self.__dict__["depth"] -= 1
            handler(*args)
        return end


def parse_xml(body: bytes | str) -> dict:
    """The children of an XML document's root (nested elements as dicts); BadPayload when it is not one."""
    try:
        doc = xmltodict.parse(body, expat=_BoundedExpat, disable_entities=True)
    except BadPayload:
        raise
    except Exception as exc:  # expat, its handlers and the decoder raise several types
        raise BadPayload(f"not XML: {exc.__class__.__name__}") from None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise BadPayload("not one XML document")
    root = next(iter(doc.values()))
    if not isinstance(root, dict):
        raise BadPayload("XML root has no fields")
    return root


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is not a finite number")  # JSONB (and JSON itself) has no inf
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # json accepts NaN and Infinity; JSONB refuses them


def _too_deep(doc) -> bool:
    todo = [(doc, 1)]
    while todo:  # iterative: the point is not to recurse over hostile input
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        todo.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def parse_json(body: bytes | str) -> dict:
    """A JSON object body, nested at most MAX_DEPTH deep, numbers finite; BadPayload otherwise."""
    try:
        doc = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError, TypeError):
        raise BadPayload("not JSON") from None
    if not isinstance(doc, dict):
        raise BadPayload("JSON body is not an object")
    if _too_deep(doc):
        raise BadPayload(f"JSON nested deeper than {MAX_DEPTH}")
    return doc


def parse_body(body: bytes | str) -> tuple[dict, str]:
    """The fields of an XML or JSON body and which it was ("xml" or "json")."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if text.lstrip().startswith("{"):
        return parse_json(text), "json"
    return parse_xml(text), "xml"


_BASE64 = re.compile(rb"[A-Za-z0-9+/=]+")
_JSON_START = re.compile(rb"\s*\{")
_JSON_ENCRYPT = re.compile(rb'"Encrypt"\s*:\s*"([A-Za-z0-9+/=\\]*)"')


def extract_encrypt(body: bytes) -> str:
    """The ciphertext of an encrypted envelope (XML or JSON), found by a linear scan that builds no document.

    The signature covers only this field, so nothing else of the outer envelope is read before it is checked.
    """
    if _JSON_START.match(body):
        found = _JSON_ENCRYPT.findall(body) if body.count(b'"Encrypt"') == 1 else []
        if len(found) != 1:
            raise BadPayload("no single Encrypt field")
        value = found[0].replace(b"\\/", b"/")  # JSON may escape the slash, and nothing else in base64
    else:
        start = body.find(b"<Encrypt>")
        end = body.find(b"</Encrypt>", start)
        if start < 0 or end < 0 or body.find(b"<Encrypt>", start + 1) >= 0:
            raise BadPayload("no single Encrypt field")
        value = body[start + len(b"<Encrypt>"):end].strip()
        if value.startswith(b"<![CDATA[") and value.endswith(b"]]>"):
            value = value[len(b"<![CDATA["):-len(b"]]>")]
    if not _BASE64.fullmatch(value):
        raise BadPayload("Encrypt is not base64")
    return value.decode("ascii")
