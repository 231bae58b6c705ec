"""No secret, grant code or access token in what a failed Tencent call leaves behind: its error, its traceback,
`siyu doctor`'s lines, `siyu sync wecom`'s message."""
from __future__ import annotations

import time
import traceback

import pytest
from typer.testing import CliRunner

from bot import clients
from bot.errors import TransportError, WeChatAPIError, scrub
from bot.sandbox.serve import free_port
from bot.tokens import token_key
from config.settings import get_settings

CONTACT_SECRET = "wecomContactSecret0123456789"
AGENT_SECRET = "wecomAgentSecret0123456789"
OA_SECRET = "oaAppSecret0123456789abcd"
MP_SECRET = "mpAppSecret0123456789abcd"
JS_CODE = "0a1B2c3D4e5F6g7H8i9J"
ACCESS_TOKEN = "cachedAccessToken0123456789"
SECRETS = (CONTACT_SECRET, AGENT_SECRET, OA_SECRET, MP_SECRET, JS_CODE, ACCESS_TOKEN)


@pytest.fixture
def unreachable(sqlite_settings, monkeypatch):
    """Real WeCom, official-account and mini-program credentials whose API bases nobody listens on."""
    down = f"http://127.0.0.1:{free_port()}/"
    env = {
        "SIYU_WECOM_CORP_ID": "ww0123456789abcdef", "SIYU_WECOM_TOKEN": "cbtoken",
        "SIYU_WECOM_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "SIYU_WECOM_CONTACT_SECRET": CONTACT_SECRET, "SIYU_WECOM_AGENT_ID": "1000002",
        "SIYU_WECOM_AGENT_SECRET": AGENT_SECRET, "SIYU_WECOM_API_BASE": f"{down}cgi-bin/",
        "SIYU_OA_APP_ID": "wxoa0000000000001", "SIYU_OA_APP_SECRET": OA_SECRET, "SIYU_OA_TOKEN": "oatoken",
        "SIYU_MP_APP_ID": "wxmp0000000000001", "SIYU_MP_APP_SECRET": MP_SECRET, "SIYU_MP_TOKEN": "mptoken",
        "SIYU_WECHAT_API_BASE": down, "SIYU_PUBLIC_URL": down, "SIYU_WECHAT_HTTP_TIMEOUT": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    clients.reset_clients()
    yield get_settings()
    clients.reset_clients()
    get_settings.cache_clear()


def _cached_token(settings) -> None:
    # A token already in the process's cache: the next call goes out with ?access_token= in its URL.
    for secret in (settings.wecom_contact_secret, settings.wecom_agent_secret):
        key = token_key("wecom", settings.wecom_corp_id, secret)
        clients.shared_cache(settings).local.put(key, ACCESS_TOKEN, time.time() + 3600)


def _everything_printed(exc: BaseException) -> str:
    return str(exc) + "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(("call", "cached"), [
    pytest.param(lambda: clients.wecom_client().access_token(), False, id="wecom gettoken?corpsecret="),
    pytest.param(lambda: clients.oa_client().access_token(), False, id="oa token?secret="),
    pytest.param(lambda: clients.mp_client().code2session(JS_CODE), False, id="mp jscode2session?secret=&js_code="),
    pytest.param(lambda: clients.wecom_client().list_follow_users(), True, id="any api?access_token="),
])
def test_a_call_that_cannot_connect_raises_an_error_whose_text_and_traceback_hold_no_secret(unreachable, call,
                                                                                             cached):
    # given a channel whose API base is down (and, for calls that carry one, a token already cached)
    if cached:
        _cached_token(unreachable)
    # when a call's URL carries a secret, a grant code or the access token and the connection fails
    with pytest.raises(TransportError) as exc:
        call()
    # then the error still says what happened, and neither it nor its traceback names any secret
    printed = _everything_printed(exc.value)
    assert "ConnectionError" in printed and "***" in printed
    assert not [s for s in SECRETS if s in printed], printed


def test_siyu_doctor_prints_no_secret_when_every_channel_is_down(unreachable):
    from siyu.cli import app

    # given every channel unreachable, when `siyu doctor` runs
    result = CliRunner().invoke(app, ["doctor"])
    # then it fails, line by line, without printing a secret (rich folds long lines: join them again)
    assert result.exit_code == 1
    assert "✗ wecom contact secret" in result.output
    printed = "".join(result.output.split())
    assert not [s for s in SECRETS if s in printed], result.output


def test_siyu_sync_wecom_reports_a_failed_call_without_the_access_token(unreachable):
    from siyu.cli import app

    # given a cached token and WeCom down
    _cached_token(unreachable)
    # when a sync runs, then its one-line failure names the API but not the token
    result = CliRunner().invoke(app, ["sync", "wecom"])
    assert result.exit_code == 1 and "sync wecom:" in result.output
    assert ACCESS_TOKEN not in "".join(result.output.split()), result.output


def test_tencent_error_messages_are_scrubbed_when_the_error_is_made():
    # given an errmsg that echoes the request (as some Tencent hints and proxies do)
    exc = WeChatAPIError(40001, f"invalid credential, hint: [https://x/cgi-bin/gettoken?corpsecret={CONTACT_SECRET}]",
                         "gettoken")
    # then the error's message and errmsg are scrubbed, while its errcode and wording stay
    assert CONTACT_SECRET not in str(exc) and CONTACT_SECRET not in exc.errmsg
    assert str(exc).startswith("gettoken: errcode 40001: invalid credential")
    assert scrub(f"secret={OA_SECRET}&appid=wx1") == "secret=***&appid=wx1"


def test_credentials_and_settings_never_print_their_secrets(unreachable):
    from bot.credentials import mp_credentials, wecom_credentials

    # when credentials or settings are printed (a log line, an error, a debugger)
    printed = repr(wecom_credentials(unreachable)) + repr(mp_credentials(unreachable)) + repr(unreachable)
    # then they show which app they are, never its secret or Token
    assert "ww0123456789abcdef" in printed
    assert not [s for s in (CONTACT_SECRET, MP_SECRET, "cbtoken", "mptoken") if s in printed], printed
