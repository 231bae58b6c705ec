"""WeChat Pay v3 for the mini-program: JSAPI prepay, query, close, refund, notification checks.

Requests are signed with the merchant key and answers verified against WeChat Pay's public key.
Every call has a timeout; 429 and 5xx are retried a bounded number of times (each of these
calls is idempotent on out_trade_no / out_refund_no), anything else is a typed permanent error.
"""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping

import httpx

from bot import metrics
from bot import pay_crypto as pc
from bot.credentials import PayCredentials
from bot.errors import BusyError, PermanentAPIError, RateLimitedError, TransportError
from bot.transport import RetryPolicy


class PayClient:
    """One merchant's Pay v3 API."""

    def __init__(self, creds: PayCredentials, timeout: float = 10.0, policy: RetryPolicy | None = None,
                 sleep=time.sleep):
        self.creds = creds
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.http = httpx.Client(base_url=creds.api_base, timeout=timeout)
        self._key = pc.load_private_key(creds.private_key_path)
        self._platform = pc.load_public_key(creds.public_key_path) if creds.public_key_path else None

    # -- calls -------------------------------------------------------------------------------
    def _call(self, method: str, path: str, api: str, body: dict | None = None) -> dict:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        base_path = httpx.URL(self.creds.api_base).path
        retries = {"rate": 0, "busy": 0}
        while True:
            headers = {
                "Authorization": pc.authorization(self.creds.mch_id, self.creds.cert_serial, self._key, method,
                                                  base_path.rstrip("/") + "/" + path, text),
                "Accept": "application/json", "Content-Type": "application/json",
            }
            try:
                res = self.http.request(method, path, content=text.encode() if text else None, headers=headers)
            except httpx.HTTPError as exc:
                metrics.API_CALLS.labels("pay", api, "http").inc()
                raise TransportError.of(exc, api) from None  # the cause names the URL: see TransportError.of
            metrics.API_CALLS.labels("pay", api, str(res.status_code)).inc()
            if res.status_code < 300:
                if self._platform is not None and res.content:
                    try:
                        pc.verify_headers(self._platform, res.headers, res.content)
                    except pc.PaySignatureError as exc:
                        raise TransportError(None, f"answer signature: {exc}", api) from None
                return res.json() if res.content else {}
            err = _error(res)
            kind = "rate" if res.status_code == 429 else "busy" if res.status_code >= 500 else None
            if kind is None:
                raise PermanentAPIError(err.get("code"), err.get("message", ""), api)
            if retries[kind] >= (self.policy.rate_retries if kind == "rate" else self.policy.busy_retries):
                raise (RateLimitedError if kind == "rate" else BusyError)(err.get("code"), err.get("message", ""), api)
            self.sleep(self.policy.backoff(retries[kind]))
            retries[kind] += 1

    def jsapi_prepay(self, appid: str, description: str, out_trade_no: str, amount_fen: int, openid: str,
                     notify_url: str, attach: str | None = None, time_expire: str | None = None) -> dict:
        """v3/pay/transactions/jsapi: a prepay order; answers `prepay_id`."""
        body = {"appid": appid, "mchid": self.creds.mch_id, "description": description,
                "out_trade_no": out_trade_no, "notify_url": notify_url,
                "amount": {"total": int(amount_fen), "currency": "CNY"}, "payer": {"openid": openid}}
        if attach:
            body["attach"] = attach
        if time_expire:
            body["time_expire"] = time_expire
        return self._call("POST", "v3/pay/transactions/jsapi", "pay/jsapi", body)

    def jsapi_pay_params(self, appid: str, prepay_id: str) -> dict:
        """What wx.requestPayment needs, signed with the merchant key."""
        ts, nonce, package = str(int(time.time())), secrets.token_hex(16), f"prepay_id={prepay_id}"
        sign = pc.rsa_sign(self._key, f"{appid}\n{ts}\n{nonce}\n{package}\n")
        return {"appId": appid, "timeStamp": ts, "nonceStr": nonce, "package": package,
                "signType": "RSA", "paySign": sign}

    def query_order(self, out_trade_no: str) -> dict:
        """v3/pay/transactions/out-trade-no/{no}: the order and its trade_state."""
        return self._call("GET", f"v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={self.creds.mch_id}",
                          "pay/query")

    def close_order(self, out_trade_no: str) -> dict:
        """v3/pay/transactions/out-trade-no/{no}/close (204: closed)."""
        return self._call("POST", f"v3/pay/transactions/out-trade-no/{out_trade_no}/close", "pay/close",
                          {"mchid": self.creds.mch_id})

    def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None, notify_url: str | None = None) -> dict:
        """v3/refund/domestic/refunds: refund part or all of a paid order."""
        body: dict = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                      "amount": {"refund": int(refund_fen), "total": int(total_fen), "currency": "CNY"}}
        if reason:
            body["reason"] = reason
        if notify_url:
            body["notify_url"] = notify_url
        return self._call("POST", "v3/refund/domestic/refunds", "pay/refund", body)

    def query_refund(self, out_refund_no: str) -> dict:
        """v3/refund/domestic/refunds/{out_refund_no}."""
        return self._call("GET", f"v3/refund/domestic/refunds/{out_refund_no}", "pay/refund_query")

    # -- notifications -------------------------------------------------------------------------
    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> dict:
        """Verify a notification on its raw body and decrypt it: `{"event_type", "id", "resource": {...}}`."""
        if self._platform is None:
            raise pc.PaySignatureError("SIYU_PAY_PUBLIC_KEY_PATH is not set: notifications cannot be verified")
        pc.verify_headers(self._platform, headers, body)
        try:
            envelope = json.loads(body)
        except ValueError:
            raise pc.PaySignatureError("body is not JSON") from None
        plaintext = pc.aead_decrypt(self.creds.apiv3_key, envelope.get("resource") or {})
        return {"id": envelope.get("id"), "event_type": envelope.get("event_type"),
                "resource": json.loads(plaintext)}


def _error(res: httpx.Response) -> dict:
    try:
        data = res.json()
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {"code": f"HTTP_{res.status_code}", "message": res.text[:200]}
