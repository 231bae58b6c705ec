"""`siyu doctor` channel checks and the nightly sync registration."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from bot.clients import mp_client, oa_client, reset_clients, wecom_client
from bot.doctor import run_checks
from bot.errors import PermanentAPIError, TokenError
from bot.sandbox.app import create_sandbox_app
from bot.sandbox.serve import serve_in_background
from bot.sandbox.state import reset_state
from config.settings import get_settings
from siyu.cli import app as cli

CHANNELS = ("wecom contact secret", "wecom agent", "official account", "mini-program", "pay (merchant 1900000001)")


def _by_channel(checks) -> dict:
    return {c.line.split(":", 1)[0]: c for c in checks}


def test_given_the_sandbox_when_doctor_runs_then_every_channel_is_a_green_round_trip(sandbox):
    # when doctor runs against the sandbox
    checks = run_checks()
    # then every check is green, and each channel check names the API call that answered
    assert checks and all(c.ok for c in checks), [c.line for c in checks if not c.ok]
    lines = _by_channel(checks)
    assert set(CHANNELS) <= set(lines)
    assert lines["wecom contact secret"].line.startswith(
        "wecom contact secret: the sandbox answers get_follow_user_list")
    assert "agent/get" in lines["wecom agent"].line and "get_api_domain_ip" in lines["mini-program"].line
    assert "ORDER_NOT_EXIST" in lines["pay (merchant 1900000001)"].line
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 1 and sandbox.calls["agent/get"] == 1
    assert sandbox.calls["cgi-bin/get_api_domain_ip"] == 2
    # when it runs again, then it makes the round trips again but fetches no new token (a new OA token
    # would invalidate the one every other process uses)
    fetched = sandbox.calls["cgi-bin/token"], sandbox.calls["gettoken"]
    assert all(c.ok for c in run_checks())
    assert sandbox.calls["cgi-bin/get_api_domain_ip"] == 4
    assert (sandbox.calls["cgi-bin/token"], sandbox.calls["gettoken"]) == fetched


@pytest.fixture
def stoppable_sandbox(sqlite_settings, monkeypatch):
    """A sandbox of its own, which the test may stop."""
    app = FastAPI()
    app.mount("/sandbox", create_sandbox_app())
    served = serve_in_background(app)
    monkeypatch.setenv("SIYU_PUBLIC_URL", served.url)
    get_settings.cache_clear()
    reset_clients()
    reset_state()
    yield served
    served.stop()
    reset_clients()
    get_settings.cache_clear()


def test_given_warm_cached_tokens_when_the_api_is_unreachable_then_every_channel_check_fails(stoppable_sandbox):
    # given doctor ran green, so every channel's token is cached in this process and in the token store
    assert all(c.ok for c in run_checks())
    # when the API stops answering
    stoppable_sandbox.stop()
    checks = _by_channel(run_checks())
    # then every channel is ✗, in one line that names the fix and carries no URL (nor a token)
    for name in CHANNELS:
        check = checks[name]
        assert not check.ok, check.line
        assert "did not answer" in check.line and "SIYU_PUBLIC_URL" in check.line
        assert "\n" not in check.line and "http" not in check.line and "token=" not in check.line
    # and `siyu doctor` says so and exits non-zero
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1
    assert "✗ wecom contact secret: externalcontact/get_follow_user_list did not answer" in result.output


def test_the_sandbox_refuses_probe_calls_as_tencent_does(sandbox):
    # agent/get: only the app the token belongs to (WeCom: 301002), and only an existing agentid (40056)
    with pytest.raises(PermanentAPIError) as other_app:
        wecom_client().contact.get("agent/get", params={"agentid": sandbox.agent_id})
    assert other_app.value.errcode == 301002
    with pytest.raises(PermanentAPIError) as unknown:
        wecom_client().agent.get("agent/get", params={"agentid": "999"})
    assert unknown.value.errcode == 40056
    # get_api_domain_ip answers either app's token, and refuses a dead one (refreshed once, then given up)
    assert oa_client().get_api_domain_ip()["ip_list"] and mp_client().get_api_domain_ip()["ip_list"]
    sandbox.reject_all_tokens = True
    with pytest.raises(TokenError) as dead:
        oa_client().get_api_domain_ip()
    assert dead.value.errcode == 40014


def test_given_a_wrong_secret_when_doctor_runs_then_the_line_names_the_errcode(sandbox):
    sandbox.wecom_secrets.clear()
    bad = [c for c in run_checks() if not c.ok]
    assert bad and "errcode 40001" in bad[0].line
