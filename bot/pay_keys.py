"""The keys that verify what WeChat Pay signs: its public key (微信支付公钥) and platform certificates, by serial.

A merchant migrating from platform certificates to the public key is signed by either for a while;
`Wechatpay-Serial` names the key of each answer or notification (`PUB_KEY_ID_…`, or a certificate's serial).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

from cryptography import x509

from bot import pay_crypto as pc
from bot.credentials import PayCredentials


class UnknownSerial(pc.PaySignatureError):
    """`Wechatpay-Serial` names no key Siyu holds."""


@functools.lru_cache(maxsize=16)
def _certificate_key(path: str) -> tuple[int, object]:
    with open(path, "rb") as fh:
        cert = x509.load_pem_x509_certificate(fh.read())
    return cert.serial_number, cert.public_key()


class PayKeys:
    """WeChat Pay's verifying keys of one merchant, looked up by `Wechatpay-Serial`."""

    def __init__(self, creds: PayCredentials):
        self.public_key_id = creds.public_key_id
        self.public_key = pc.load_public_key(creds.public_key_path) if creds.public_key_path else None
        self.certificates = dict(_certificate_key(p) for p in creds.platform_cert_paths)  # serial number -> key

    def key_for(self, serial: str):
        """The key `serial` names; UnknownSerial when Siyu holds none of that name."""
        serial = (serial or "").strip()
        if self.public_key is not None and serial and serial == self.public_key_id:
            return self.public_key
        try:
            number = int(serial, 16)
        except ValueError:
            number = None
        if number is not None and number in self.certificates:
            return self.certificates[number]
        raise UnknownSerial(f"Wechatpay-Serial {serial[:64]!r} names no key Siyu holds")

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
        """Check the signature over the raw body and the timestamp window; PaySignatureError when either fails."""
        lower = {k.lower(): v for k, v in dict(headers).items()}
        pc.verify_headers(self.key_for(lower.get("wechatpay-serial", "")), headers, body, now=now)
