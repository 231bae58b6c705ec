"""Process-wide clients of the four Tencent channels, built from the current settings.

Real credentials talk to the configured bases; missing ones (SIYU_SANDBOX=auto) talk to the sandbox.
Every client shares one token cache and one limiter per process.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import wechatpy
import wechatpy.enterprise
from requests.adapters import HTTPAdapter

from bot.credentials import (
    WeChatAppCredentials,
    mp_credentials,
    oa_credentials,
    pay_credentials,
    wecom_credentials,
)
from bot.limiter import limiter_from_settings
from bot.miniprogram import MPClient
from bot.official_account import OAClient
from bot.pay import PayClient
from bot.tokens import token_cache_from_settings, token_key
from bot.transport import PinnedSDK, RetryPolicy, Transport
from bot.wecom import WeComClient
from config.settings import Settings, get_settings

WECOM_HOSTS = ("https://qyapi.weixin.qq.com/cgi-bin/",)
WECHAT_HOSTS = ("https://api.weixin.qq.com/", "https://file.api.weixin.qq.com/")


class WeComSDK(PinnedSDK, wechatpy.enterprise.WeChatClient):
    """wechatpy's WeCom client, pinned to the configured base."""


class WeChatSDK(PinnedSDK, wechatpy.WeChatClient):
    """wechatpy's OA / mini-program client, pinned to the configured base."""


_lock = threading.RLock()
_shared: dict[str, object] = {}
_overrides: dict[str, object] = {}
CHANNELS = ("wecom", "oa", "mp", "pay")


def _cached(name: str, build):
    with _lock:
        if name in _overrides:
            return _overrides[name]
        if name not in _shared:
            _shared[name] = build()
        return _shared[name]


@contextlib.contextmanager
def override(**clients: object) -> Iterator[None]:
    """Within the block, `wecom_client()` (and `oa`, `mp`, `pay`) answer the given stand-ins, in every thread.

    The one seam for replacing a Tencent client (tests, a dry run): callers never patch module attributes.
    """
    unknown = set(clients) - set(CHANNELS)
    if unknown:
        raise ValueError(f"override: no client {sorted(unknown)}; clients are {CHANNELS}")
    with _lock:
        before = {name: _overrides[name] for name in clients if name in _overrides}
        _overrides.update(clients)
    try:
        yield
    finally:
        with _lock:
            for name in clients:
                _overrides.pop(name, None)
            _overrides.update(before)


def reset_clients() -> None:
    """Forget every client, the token cache and the limiter (tests, settings changes)."""
    with _lock:
        _shared.clear()


def shared_cache(settings: Settings | None = None):
    """The process's token cache."""
    return _cached("cache", lambda: token_cache_from_settings(settings or get_settings()))


def shared_limiter(settings: Settings | None = None):
    """The process's rate limiter."""
    return _cached("limiter", lambda: limiter_from_settings(settings or get_settings()))


def _policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(backoff_base=settings.wechat_backoff_base)


def build_wecom_sdk(settings: Settings, corp_id: str, secret: str, api_base: str) -> WeComSDK:
    """A pinned WeCom SDK for one secret of the corp."""
    sdk = WeComSDK(corp_id, secret, timeout=settings.wechat_http_timeout, auto_retry=False)
    sdk.API_BASE_URL = api_base
    # Kept connections for every job thread's reads in flight at once (requests keeps 10 a host by default).
    adapter = HTTPAdapter(pool_maxsize=max(10, 4 * settings.wechat_read_ahead))
    sdk._http.mount("https://", adapter)
    sdk._http.mount("http://", adapter)
    sdk.transport = Transport(
        channel="wecom", scope=corp_id, root=api_base, rewrites={h: api_base for h in WECOM_HOSTS},
        token_key=token_key("wecom", corp_id, secret), token_fetch_path="gettoken",
        token_fetch_params={"corpid": corp_id, "corpsecret": secret},
        cache=shared_cache(settings), limiter=shared_limiter(settings),
        timeout=settings.wechat_http_timeout, policy=_policy(settings), http=sdk._http,
    )
    return sdk


def build_wechat_sdk(settings: Settings, channel: str, creds: WeChatAppCredentials) -> WeChatSDK:
    """A pinned OA / mini-program SDK."""
    root = creds.api_base
    sdk = WeChatSDK(creds.app_id, creds.app_secret, timeout=settings.wechat_http_timeout, auto_retry=False)
    sdk.API_BASE_URL = f"{root}cgi-bin/"
    sdk.transport = Transport(
        channel=channel, scope=creds.app_id, root=root, rewrites={h: root for h in WECHAT_HOSTS},
        token_key=token_key(channel, creds.app_id, creds.app_secret), token_fetch_path="cgi-bin/token",
        token_fetch_params={"grant_type": "client_credential", "appid": creds.app_id, "secret": creds.app_secret},
        cache=shared_cache(settings), limiter=shared_limiter(settings),
        timeout=settings.wechat_http_timeout, policy=_policy(settings), http=sdk._http,
        default_base=f"{root}cgi-bin/",
    )
    return sdk


def make_wecom_client(settings: Settings) -> WeComClient:
    """A new WeCom client from `settings`."""
    creds = wecom_credentials(settings)
    contact = build_wecom_sdk(settings, creds.corp_id, creds.contact_secret, creds.api_base)
    agent = None
    if creds.agent_secret:
        agent = build_wecom_sdk(settings, creds.corp_id, creds.agent_secret, creds.api_base)
    return WeComClient(creds, contact, agent, limiter=shared_limiter(settings))


def wecom_client() -> WeComClient:
    """The process's WeCom client."""
    return _cached("wecom", lambda: make_wecom_client(get_settings()))


def oa_client() -> OAClient:
    """The process's official-account client."""
    def build():
        settings = get_settings()
        creds = oa_credentials(settings)
        return OAClient(creds, build_wechat_sdk(settings, "oa", creds))

    return _cached("oa", build)


def mp_client() -> MPClient:
    """The process's mini-program client."""
    def build():
        settings = get_settings()
        creds = mp_credentials(settings)
        return MPClient(creds, build_wechat_sdk(settings, "mp", creds))

    return _cached("mp", build)


def pay_client():
    """The process's Pay v3 client."""
    def build():
        settings = get_settings()
        return PayClient(pay_credentials(settings), timeout=settings.wechat_http_timeout)

    return _cached("pay", build)
