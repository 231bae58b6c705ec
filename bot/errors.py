"""Typed failures of Tencent API calls: every one carries errcode, errmsg and the API it came from.

Messages are scrubbed when the error is made: a requests or httpx failure names the URL it was opening,
query string and all (`corpsecret=`, `secret=`, `js_code=`, `access_token=`), and whoever prints the
error afterwards (doctor, a 502 answer, a sync report, a job failure, a log line) must not see it.
"""
from __future__ import annotations

from config.errors import Upstream
from config.redact import redact


def scrub(text: str) -> str:
    """`text` with every secret value (tokens, secrets, grant codes, keys) replaced by `***`, phones masked."""
    return redact(text) or ""


class WeChatAPIError(Upstream):
    """A Tencent API call that did not succeed; its message carries no secret (answered 502 "WeChat refused: …")."""

    def __init__(self, errcode: int | None, errmsg: str, api: str):
        self.errcode = errcode
        self.errmsg = scrub(str(errmsg))
        self.api = scrub(str(api))
        super().__init__(f"{self.api}: errcode {errcode}: {self.errmsg}")

    @property
    def detail(self) -> str:
        """What an HTTP answer says: that WeChat refused, and how."""
        return f"WeChat refused: {self}"


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

    @classmethod
    def of(cls, exc: Exception, api: str) -> TransportError:
        """The scrubbed TransportError of an HTTP client's failure; raise it `from None`.

        The failure's text names the URL it was opening, query string and all, and a chained cause is
        printed in every traceback (stored errors, RQ's registry, uvicorn's log): only the scrubbed copy
        of its type and text travels on.
        """
        return cls(None, f"{type(exc).__name__}: {exc}", api)


class ForeignHostError(PermanentAPIError):
    """A request aimed outside the configured API base; refused before it leaves the machine."""
