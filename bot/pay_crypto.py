"""WeChat Pay v3 signatures and resource encryption, on `cryptography` directly.

Requests: RSA-SHA256 over "METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n" with the merchant key.
Answers and notifications: RSA-SHA256 over "TIMESTAMP\\nNONCE\\nBODY\\n" with WeChat Pay's key.
Notification resources: AEAD_AES_256_GCM with the 32-byte APIv3 key as-is.
"""
from __future__ import annotations

import base64
import functools
import secrets
import time

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.errors import Forbidden

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW = 300  # seconds: a notification older or newer than this is refused (replay)


class PaySignatureError(Forbidden):
    """A Pay v3 signature or ciphertext that does not verify."""


@functools.lru_cache(maxsize=16)
def load_private_key(path: str):
    """The RSA private key in a PEM file."""
    with open(path, "rb") as fh:
        return serialization.load_pem_private_key(fh.read(), None)


@functools.lru_cache(maxsize=16)
def load_public_key(path: str):
    """The RSA public key in a PEM file."""
    with open(path, "rb") as fh:
        return serialization.load_pem_public_key(fh.read())


def rsa_sign(private_key, message: str) -> str:
    """Base64 RSA-SHA256 (PKCS#1 v1.5) signature of `message`."""
    return base64.b64encode(private_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key, message: str | bytes, signature: str) -> bool:
    """Whether `signature` is a valid RSA-SHA256 signature of `message`."""
    data = message if isinstance(message, bytes) else message.encode()
    try:
        public_key.verify(base64.b64decode(signature), data, padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def request_message(method: str, path_query: str, timestamp: str, nonce: str, body: str) -> str:
    """The string a merchant signs for one request."""
    return f"{method.upper()}\n{path_query}\n{timestamp}\n{nonce}\n{body}\n"


def authorization(mch_id: str, serial: str, private_key, method: str, path_query: str, body: str) -> str:
    """The Authorization header of a Pay v3 request."""
    ts, nonce = str(int(time.time())), secrets.token_hex(16)
    sig = rsa_sign(private_key, request_message(method, path_query, ts, nonce, body))
    return (f'{AUTH_SCHEME} mchid="{mch_id}",nonce_str="{nonce}",signature="{sig}",'
            f'timestamp="{ts}",serial_no="{serial}"')


def parse_authorization(header: str) -> dict[str, str]:
    """The fields of a Pay v3 Authorization header ({} when it is not one)."""
    scheme, _, rest = (header or "").partition(" ")
    if scheme != AUTH_SCHEME:
        return {}
    fields = {}
    for part in rest.split(","):
        key, _, value = part.strip().partition("=")
        fields[key] = value.strip('"')
    return fields


def response_headers(private_key, key_id: str, body: bytes | str) -> dict[str, str]:
    """Wechatpay-* headers signing an answer or notification body."""
    text = body.decode() if isinstance(body, bytes) else body
    ts, nonce = str(int(time.time())), secrets.token_hex(16)
    return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": key_id,
            "Wechatpay-Signature": rsa_sign(private_key, f"{ts}\n{nonce}\n{text}\n"),
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}


def verify_headers(public_key, headers, body: bytes, now: float | None = None) -> None:
    """Check Wechatpay-Signature over the raw body; PaySignatureError when it fails or is stale."""
    lower = {k.lower(): v for k, v in dict(headers).items()}  # header names are case-insensitive
    ts, nonce, sig = (lower.get(h) for h in ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature"))
    if not (ts and nonce and sig):
        raise PaySignatureError("missing Wechatpay-* signature headers")
    if not ts.isdigit() or abs((now or time.time()) - int(ts)) > MAX_SKEW:
        raise PaySignatureError("timestamp outside the allowed window")
    if not rsa_verify(public_key, f"{ts}\n{nonce}\n".encode() + body + b"\n", sig):
        raise PaySignatureError("signature does not verify")


def aead_encrypt(apiv3_key: str, plaintext: bytes, associated_data: str, nonce: str | None = None) -> dict:
    """A notification `resource`: AEAD_AES_256_GCM ciphertext with its nonce and associated data."""
    nonce = nonce or secrets.token_hex(6)  # 12 characters, as WeChat Pay sends
    ct = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ct).decode(),
            "associated_data": associated_data, "nonce": nonce}


def aead_decrypt(apiv3_key: str, resource: dict) -> bytes:
    """The plaintext of a notification `resource`; PaySignatureError when it does not decrypt."""
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise PaySignatureError(f"unknown algorithm {resource.get('algorithm')!r}")
    try:
        return AESGCM(apiv3_key.encode()).decrypt(
            resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
            (resource.get("associated_data") or "").encode(),
        )
    except (InvalidTag, KeyError, ValueError) as exc:
        raise PaySignatureError(f"resource does not decrypt: {type(exc).__name__}") from None
