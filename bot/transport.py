"""The one road every Tencent API call takes: pinned base URL, shared token, limiter, bounded retries, metrics.

wechatpy's own `_request` retries a token error without bound, sends without a timeout, and some of
its API groups (and `fetch_access_token`) hard-code Tencent's hosts. `PinnedSDK` replaces those
parts of a wechatpy client so that everything it sends goes through `Transport.request`.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from bot import metrics
from bot.errors import (
    BusyError,
    ForeignHostError,
    PermanentAPIError,
    RateLimitedError,
    TokenError,
    TransportError,
    WeChatAPIError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often each kind of transient failure is retried; every budget is finite."""

    token_refreshes: int = 1  # 40014/42001/40001: refresh once, retry once
    rate_retries: int = 3  # 45009/45033: back off with jitter
    busy_retries: int = 3  # -1: Tencent says at most three
    backoff_base: float = 1.0
    backoff_max: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (0-based): exponential, with full jitter around it."""
        return min(self.backoff_max, self.backoff_base * (2**attempt)) * (0.5 + random.random())


# errcode -> (what to do, RetryPolicy budget, error raised when the budget is spent)
OUTCOMES: dict[int, tuple[str, str, type[WeChatAPIError]]] = {
    40014: ("refresh", "token_refreshes", TokenError),  # invalid access_token
    42001: ("refresh", "token_refreshes", TokenError),  # access_token expired
    40001: ("refresh", "token_refreshes", TokenError),  # invalid credential (OA: token of another secret)
    45009: ("backoff", "rate_retries", RateLimitedError),  # frequency limit
    45033: ("backoff", "rate_retries", RateLimitedError),  # concurrency limit
    -1: ("backoff", "busy_retries", BusyError),  # system busy
}


def read_environment_once(http: requests.Session, root: str) -> None:
    """Settle what requests would read from the environment on every call: the proxy for `root`, the CA bundle.

    With `trust_env` requests scans os.environ twice per request for proxies and no_proxy (a quarter of a
    millisecond, as much as a local round trip); every call of a transport goes to its one root, so once is enough.
    """
    http.trust_env = False
    http.proxies.update(requests.utils.get_environ_proxies(root))
    if bundle := os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"):
        http.verify = bundle


@dataclass
class Transport:
    """Sends one channel's calls: `root` is the configured base, `rewrites` map Tencent hosts onto it."""

    channel: str  # wecom, oa, mp
    scope: str  # corp id or app id: what Tencent counts limits against
    root: str
    rewrites: dict[str, str]
    token_key: str
    token_fetch_path: str
    token_fetch_params: dict[str, str]
    cache: object  # RedisTokenCache | DatabaseTokenCache
    limiter: object  # LocalLimiter | RedisLimiter
    timeout: float
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    http: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    default_base: str | None = None  # where relative endpoints go (OA/MP: root + "cgi-bin/")
    no_token: frozenset[str] = frozenset({"sns/jscode2session"})  # APIs authenticated by appid+secret

    def __post_init__(self) -> None:
        read_environment_once(self.http, self.root)

    # -- URLs -------------------------------------------------------------------------------
    def pin(self, url_or_endpoint: str, api_base_url: str | None = None) -> str:
        """The absolute URL under `root` for an endpoint or a Tencent URL; ForeignHostError otherwise."""
        url = url_or_endpoint
        if not url.startswith(("http://", "https://")):
            url = f"{api_base_url or self.default_base or self.root}{url}"
        for prefix, target in self.rewrites.items():
            if url.startswith(prefix):
                url = target + url[len(prefix):]
                break
        if not url.startswith(self.root):
            raise ForeignHostError(None, f"refusing to send outside {self.root}: {url}", self.channel)
        return url

    def api_name(self, url: str) -> str:
        """The API a URL names, as counted in metrics and limits: `externalcontact/get`."""
        path = url[len(self.root):].split("?", 1)[0]
        return path.removeprefix("cgi-bin/")

    # -- tokens -----------------------------------------------------------------------------
    def token(self) -> str:
        """The shared access token of this channel's secret."""
        return self.cache.get(self.token_key, self._fetch_token)

    def _fetch_token(self) -> tuple[str, int]:
        url = self.pin(self.token_fetch_path, self.root)
        api = self.api_name(url)
        self.limiter.acquire(self.scope, api)
        metrics.TOKEN_FETCHES.labels(self.channel).inc()
        result = self._send("GET", url, api, dict(self.token_fetch_params), None, {})
        code = _errcode(result)
        if code or not isinstance(result, dict) or not result.get("access_token"):
            raise TokenError(code, _errmsg(result), api)
        log.info("%s token: fetched for %s", self.channel, self.scope)
        return result["access_token"], int(result.get("expires_in", 7200))

    # -- calls ------------------------------------------------------------------------------
    def request(self, method: str, url_or_endpoint: str, **kwargs):
        """One API call with the token, the limiter and the bounded retries; returns Tencent's JSON."""
        url = self.pin(url_or_endpoint, kwargs.pop("api_base_url", None))
        api = self.api_name(url)
        processor = kwargs.pop("result_processor", None)
        kwargs.pop("timeout", None)  # ours always applies
        params = dict(kwargs.pop("params", None) or {})
        data = kwargs.pop("data", None)
        if isinstance(data, (dict, list)):
            data = json.dumps(data, ensure_ascii=False).encode("utf-8")
        with_token = "access_token" not in params and api not in self.no_token
        token = None
        spent = {name: 0 for name in ("token_refreshes", "rate_retries", "busy_retries")}
        while True:
            if with_token:
                token = token or self.token()
                params["access_token"] = token
            waited = self.limiter.acquire(self.scope, api)
            if waited:
                metrics.LIMITER_WAITS.labels(self.channel, api).inc()
            result = self._send(method, url, api, params, data, kwargs)
            code = _errcode(result)
            if not code:
                return processor(result) if processor else result
            action, budget, error = OUTCOMES.get(code, ("fail", "", PermanentAPIError))
            if action == "fail" or (action == "refresh" and not with_token):
                raise PermanentAPIError(code, _errmsg(result), api)
            if spent[budget] >= getattr(self.policy, budget):
                raise error(code, _errmsg(result), api)
            spent[budget] += 1
            if action == "refresh":
                log.info("%s %s: errcode %s, refreshing the token once", self.channel, api, code)
                token = self.cache.refresh(self.token_key, token, self._fetch_token)
            else:
                delay = self.policy.backoff(spent[budget] - 1)
                log.warning("%s %s: errcode %s, retry %d in %.2fs", self.channel, api, code, spent[budget], delay)
                self.sleep(delay)

    def _send(self, method: str, url: str, api: str, params: dict, data, extra: dict):
        started = time.perf_counter()
        try:
            res = self.http.request(method, url, params=params, data=data, timeout=self.timeout, **extra)
        except requests.RequestException as exc:
            metrics.API_CALLS.labels(self.channel, api, "http").inc()
            raise TransportError.of(exc, api) from None  # the cause names the URL: see TransportError.of
        finally:
            metrics.API_SECONDS.labels(self.channel, api).observe(time.perf_counter() - started)
        if res.status_code >= 400:
            metrics.API_CALLS.labels(self.channel, api, "http").inc()
            raise TransportError(None, f"HTTP {res.status_code}", api)
        if "json" not in res.headers.get("content-type", "") and not res.content.startswith(b"{"):
            metrics.API_CALLS.labels(self.channel, api, "0").inc()
            return res  # media and other binary answers
        try:
            result = json.loads(res.content.decode("utf-8", "ignore"), strict=False)
        except ValueError:
            metrics.API_CALLS.labels(self.channel, api, "http").inc()
            raise TransportError(None, "answer is not JSON", api) from None
        metrics.API_CALLS.labels(self.channel, api, str(_errcode(result))).inc()
        return result


def _errcode(result) -> int:
    if isinstance(result, dict) and "errcode" in result:
        try:
            return int(result["errcode"])
        except (TypeError, ValueError):
            return -1
    return 0


def _errmsg(result) -> str:
    return str(result.get("errmsg", "")) if isinstance(result, dict) else "no JSON answer"


class PinnedSDK:
    """Mixed in before a wechatpy client class: routes every request and token fetch through `transport`."""

    transport: Transport

    def _request(self, method, url_or_endpoint, **kwargs):
        return self.transport.request(method, url_or_endpoint, **kwargs)

    def fetch_access_token(self):
        token = self.transport.cache.refresh(self.transport.token_key, None, self.transport._fetch_token)
        return {"access_token": token}

    def _fetch_access_token(self, url, params):  # wechatpy's own fetch would go to Tencent's host
        return self.fetch_access_token()

    @property
    def access_token(self):
        return self.transport.token()
