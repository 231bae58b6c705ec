"""Typed failures of Tencent API calls: every one carries errcode, errmsg and the API it came from."""
from __future__ import annotations


class WeChatAPIError(Exception):
    """A Tencent API call that did not succeed."""

    def __init__(self, errcode: int | None, errmsg: str, api: str):
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        super().__init__(f"{api}: errcode {errcode}: {errmsg}")


class PermanentAPIError(WeChatAPIError):
    """Tencent refused the call for a reason retrying will not fix (bad parameter, no permission…)."""


class RateLimitedError(WeChatAPIError):
    """45009 / 45033 (or the local limiter) still refusing after the bounded backoff."""


class TokenError(WeChatAPIError):
    """The access token stayed invalid after one refresh, or could not be fetched at all."""


class BusyError(WeChatAPIError):
    """-1 (system busy) after the bounded retries."""


class TransportError(WeChatAPIError):
    """No usable answer: timeout, connection refused, HTTP error status or a body that is not JSON."""


class ForeignHostError(PermanentAPIError):
    """A request aimed outside the configured API base; refused before it leaves the machine."""
