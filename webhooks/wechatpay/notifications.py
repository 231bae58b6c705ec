"""Opening a Pay v3 notification: signature on the raw body, timestamp window, AES-256-GCM resource, and the facts.

Everything here happens before the answer: a notification that fails any check is refused (4xx) and changes
nothing; Tencent delivers it again, up to 15 times. The order facts (does Siyu expect this out_trade_no, for this
amount?) come from lookups other packages register (webhooks.registry), so this package imports none of them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot import pay_crypto as pc
from bot.credentials import mp_credentials, pay_credentials
from bot.pay_keys import PayKeys, UnknownSerial
from config.errors import DomainError
from config.settings import get_settings
from webhooks import registry

MAX_TEXT = 200  # characters of a field quoted back in a refusal


class Refused(DomainError):
    """A notification Siyu does not take: answered `status` with Pay's `{"code": "FAIL", "message": …}`."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status_code, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class Opened:
    """A notification that passed every check: what the inbox stores."""

    event_type: str
    plaintext: str  # the decrypted resource, as WeChat Pay encrypted it
    data: dict  # what the inbox row's handler reads


def _keys() -> tuple[PayKeys, str, str]:
    settings = get_settings()
    creds = pay_credentials(settings)
    return PayKeys(creds), creds.mch_id, creds.apiv3_key


def open_notification(session: Session, headers, body: bytes, *, now: float | None = None) -> Opened:
    """Verify, decrypt and check one notification against Siyu's orders; Refused when any check fails."""
    keys, mch_id, apiv3_key = _keys()
    try:
        keys.verify(headers, body, now=now)
    except UnknownSerial as exc:
        raise Refused(403, "serial", str(exc)) from None
    except pc.PaySignatureError as exc:
        reason = "timestamp" if "timestamp" in str(exc) else "signature"
        raise Refused(403, reason, str(exc)) from None
    try:
        envelope = json.loads(body)
        plaintext = pc.aead_decrypt(apiv3_key, envelope["resource"]).decode()
        resource = json.loads(plaintext)
        event_type = str(envelope["event_type"])
    except pc.PaySignatureError as exc:
        raise Refused(400, "decrypt", str(exc)) from None
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise Refused(400, "payload", "the body or its resource is not a Pay v3 notification") from None
    if not isinstance(resource, dict):
        raise Refused(400, "payload", "the resource is not an object")
    if resource.get("mchid") != mch_id:
        raise Refused(400, "mchid", f"mchid {str(resource.get('mchid'))[:MAX_TEXT]!r} is not this merchant")
    if event_type.startswith("TRANSACTION."):
        key = _check_transaction(session, resource)
    elif event_type.startswith("REFUND."):
        key = _check_refund(session, resource)
    else:  # stored and counted as unhandled (CONTRACT: never refuse a well-signed message)
        key = str(envelope.get("id") or "")[:64]
    data = {"MsgType": "notification", "Event": event_type, "MsgId": f"{event_type}:{key}",
            "id": envelope.get("id"), "create_time": envelope.get("create_time"), "resource": resource}
    return Opened(event_type, plaintext, data)


def _expected(lookups, session: Session, key: str):
    for lookup in lookups:
        found = lookup(session, key)
        if found is not None:
            return found
    return None


def _check_transaction(session: Session, resource: dict) -> str:
    appid = mp_credentials(get_settings()).app_id
    if resource.get("appid") != appid:
        raise Refused(400, "appid", f"appid {str(resource.get('appid'))[:MAX_TEXT]!r} is not this mini-program")
    no = str(resource.get("out_trade_no") or "")
    expected = _expected(registry.PAY_ORDER_LOOKUPS, session, no)
    if expected is None:
        raise Refused(404, "order", f"no order {no[:MAX_TEXT]!r}")
    total = (resource.get("amount") or {}).get("total")
    if total != expected:
        raise Refused(400, "amount", f"amount.total {str(total)[:MAX_TEXT]} is not the order's {expected}")
    if resource.get("trade_state") != "SUCCESS" or not resource.get("transaction_id"):
        raise Refused(400, "trade_state", "a transaction notification without a successful trade")
    return f"{no}:{resource['transaction_id']}"


def _check_refund(session: Session, resource: dict) -> str:
    no = str(resource.get("out_refund_no") or "")
    expected = _expected(registry.PAY_REFUND_LOOKUPS, session, no)
    if expected is None:
        raise Refused(404, "refund", f"no refund {no[:MAX_TEXT]!r}")
    out_trade_no, refund_fen = expected
    if resource.get("out_trade_no") != out_trade_no:
        raise Refused(400, "order", "out_trade_no is not the refund's order")
    refund = (resource.get("amount") or {}).get("refund")
    if refund != refund_fen:
        raise Refused(400, "amount", f"amount.refund {str(refund)[:MAX_TEXT]} is not the refund's {refund_fen}")
    return f"{no}:{str(resource.get('refund_status'))[:16]}"
