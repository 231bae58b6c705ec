"""Tencent's rules on the client side: bounded token refresh, backoff, typed errors, pinned hosts, metrics."""
from __future__ import annotations

import pytest
import requests
from prometheus_client import REGISTRY

from bot.clients import mp_client, oa_client, wecom_client
from bot.errors import BusyError, ForeignHostError, PermanentAPIError, RateLimitedError, TokenError


def _count(api: str, errcode: str, channel: str = "wecom") -> float:
    return REGISTRY.get_sample_value("siyu_wechat_api_calls_total",
                                     {"channel": channel, "api": api, "errcode": errcode}) or 0.0


def test_given_tokens_expire_mid_run_when_calling_then_one_refresh_recovers(sandbox):
    # given: a client that already holds a token
    sandbox.add_staff("zhangsan")
    client = wecom_client()
    client.list_follow_users()
    first = client.access_token()
    # when: every token expires, then the next call runs
    sandbox.expire_tokens()
    follow = client.list_follow_users()
    # then: one 42001, one new token, one retry
    assert follow == ["zhangsan"]
    assert client.access_token() != first
    assert sandbox.calls["gettoken"] == 2
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 3


def test_given_a_token_the_server_always_rejects_then_a_typed_error_after_one_retry(sandbox):
    # given
    sandbox.reject_all_tokens = True
    client = wecom_client()
    # when
    with pytest.raises(TokenError) as exc:
        client.list_follow_users()
    # then: exactly the call and one retry, no recursion
    assert exc.value.errcode == 40014
    assert exc.value.api == "externalcontact/get_follow_user_list"
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 2


def test_given_45009_when_calling_then_backs_off_and_succeeds(sandbox, monkeypatch):
    # given: two frequency refusals queued
    sandbox.add_staff("zhangsan")
    client = wecom_client()
    slept = []
    client.contact.transport.sleep = slept.append
    sandbox.inject("externalcontact/get_follow_user_list", 45009, 45033)
    before = _count("externalcontact/get_follow_user_list", "45009")
    # when
    assert client.list_follow_users() == ["zhangsan"]
    # then: it waited twice, growing, and the refusals are counted in /metrics
    assert len(slept) == 2 and all(s > 0 for s in slept)
    assert _count("externalcontact/get_follow_user_list", "45009") == before + 1


def test_given_endless_45009_then_rate_limited_error_after_the_bounded_retries(sandbox):
    sandbox.inject("externalcontact/get_follow_user_list", *[45009] * 10)
    client = wecom_client()
    client.contact.transport.sleep = lambda s: None
    with pytest.raises(RateLimitedError) as exc:
        client.list_follow_users()
    assert exc.value.errcode == 45009
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 4  # the call and three retries


def test_given_system_busy_then_at_most_three_retries(sandbox):
    sandbox.inject("externalcontact/get_follow_user_list", -1, -1, -1, -1, -1)
    client = wecom_client()
    client.contact.transport.sleep = lambda s: None
    with pytest.raises(BusyError):
        client.list_follow_users()
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 4


def test_given_any_other_errcode_then_a_permanent_error_without_retry(sandbox):
    sandbox.inject("externalcontact/get", 60111)
    with pytest.raises(PermanentAPIError) as exc:
        wecom_client().get_external_contact("wmX")
    assert (exc.value.errcode, exc.value.api) == (60111, "externalcontact/get")
    assert sandbox.calls["externalcontact/get"] == 1


def test_given_a_wrong_secret_then_the_token_fetch_fails_typed(sandbox):
    sandbox.wecom_secrets.clear()
    with pytest.raises(TokenError) as exc:
        wecom_client().list_follow_users()
    assert exc.value.errcode == 40001
    assert sandbox.calls["gettoken"] == 1


def test_every_request_goes_to_the_configured_base_only(sandbox, monkeypatch):
    # given: record every URL requests is asked to open, in any client
    seen = []
    real = requests.Session.request

    def spy(self, method, url, *args, **kwargs):
        seen.append(url)
        assert kwargs.get("timeout"), "every call carries a timeout"
        return real(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    monkeypatch.setattr(requests.Session, "get", lambda self, url, **kw: spy(self, "GET", url, **kw))
    sandbox.add_staff("zhangsan")
    openid = sandbox.add_oa_follower()
    code = sandbox.new_login_code()
    # when: API groups of wechatpy that carry their own Tencent base are used, token fetches included
    wecom_client().list_follow_users()
    oa_client().get_user_info(openid)
    mp_client().code2session(code)
    mp_client().msg_sec_check("o1", "hello")
    wecom_client().contact.fetch_access_token()
    # then
    assert seen and all(url.startswith(sandbox_base_of(sandbox)) for url in seen), seen
    with pytest.raises(ForeignHostError):
        wecom_client().contact.get("https://example.com/steal")


def sandbox_base_of(state) -> str:
    from config.settings import get_settings

    return f"{get_settings().public_url}sandbox/"


def test_the_proxy_and_ca_bundle_come_from_the_environment_once_per_client_not_on_every_call(sandbox, monkeypatch):
    from bot.clients import reset_clients

    # given a proxy for everything but the sandbox's host, and a CA bundle, in the environment
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    reset_clients()
    sandbox.add_staff("zhangsan")
    client = wecom_client()
    transport = client.contact.transport
    # then the client honours them as requests would (the sandbox's host bypasses the proxy, the bundle is used)
    assert transport.http.trust_env is False
    assert transport.http.verify == "/etc/ssl/certs/ca-certificates.crt"
    assert not any("proxy.example" in p for p in transport.http.proxies.values())
    assert client.list_follow_users() == ["zhangsan"]
    # and a call does not read the environment again: a proxy set later changes nothing until a new client
    monkeypatch.setenv("NO_PROXY", "")
    assert client.list_follow_users() == ["zhangsan"]
    # while a client made for a host the proxy covers would go through it
    from bot.transport import read_environment_once

    other = requests.Session()
    read_environment_once(other, "https://qyapi.weixin.qq.com/cgi-bin/")
    assert other.proxies.get("https") == "http://proxy.example:3128"
    reset_clients()
