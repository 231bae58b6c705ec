"""Settings: defaults per CONTRACT §2, and a misconfiguration stops start-up with one line naming the variable."""
import pytest

from config.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("SIYU_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir("/")  # no .env file from the developer's checkout


def test_defaults_follow_the_contract():
    s = load_settings()
    assert s.database_url == "sqlite:///var/siyu.db"
    assert s.redis_url is None and s.embedded
    assert s.timezone == "Asia/Shanghai"
    assert s.sandbox == "auto"
    assert s.wecom_api_base == "https://qyapi.weixin.qq.com/cgi-bin/"
    assert s.wechat_api_base == "https://api.weixin.qq.com/"
    assert s.pay_api_base == "https://api.mch.weixin.qq.com/"
    assert all(s.uses_sandbox(c) for c in ("wecom", "official_account", "miniprogram", "pay"))


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("SIYU_WECOM_AES_KEY", "tooshort", "SIYU_WECOM_AES_KEY"),
        ("SIYU_OA_AES_KEY", "x" * 44, "SIYU_OA_AES_KEY"),
        ("SIYU_DATABASE_URL", "not a url", "SIYU_DATABASE_URL"),
        ("SIYU_REDIS_URL", "http://localhost:6379", "SIYU_REDIS_URL"),
        ("SIYU_TIMEZONE", "Mars/Olympus", "SIYU_TIMEZONE"),
        ("SIYU_SANDBOX", "maybe", "SIYU_SANDBOX"),
        ("SIYU_WECOM_API_BASE", "qyapi.weixin.qq.com", "SIYU_WECOM_API_BASE"),
        ("SIYU_INBOX_RETENTION_DAYS", "0", "SIYU_INBOX_RETENTION_DAYS"),
        ("SIYU_PAY_APIV3_KEY", "x" * 31, "SIYU_PAY_APIV3_KEY"),
        ("SIYU_PAY_PRIVATE_KEY_PATH", "/nonexistent/apiclient_key.pem", "SIYU_PAY_PRIVATE_KEY_PATH"),
        ("SIYU_PAY_PUBLIC_KEY_PATH", "/nonexistent/pub_key.pem", "SIYU_PAY_PUBLIC_KEY_PATH"),
        ("SIYU_LOG_LEVEL", "verbose", "SIYU_LOG_LEVEL"),
        ("SIYU_LOG_LEVEL", "", "SIYU_LOG_LEVEL"),
        ("SIYU_LOG_FORMAT", "xml", "SIYU_LOG_FORMAT"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_the_variable(monkeypatch, var, value, named):
    # given a bad value
    monkeypatch.setenv(var, value)
    # when settings load, then one line names the variable
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = str(exc.value)
    assert message.startswith(named + ":")
    assert "\n" not in message


@pytest.mark.parametrize(("level", "fmt"), [("debug", "JSON"), ("Warning", "text"), (" ERROR ", "Json")])
def test_log_level_and_format_are_taken_in_any_case(monkeypatch, level, fmt):
    # given a level and a format in the case people type them
    monkeypatch.setenv("SIYU_LOG_LEVEL", level)
    monkeypatch.setenv("SIYU_LOG_FORMAT", fmt)
    # when settings load, then they are normalised to what logging and the formatter take
    s = load_settings()
    assert (s.log_level, s.log_format) == (level.strip().upper(), fmt.lower())


def test_the_cli_refuses_an_unknown_log_level_in_one_line_before_running(monkeypatch):
    from typer.testing import CliRunner

    from config.settings import get_settings
    from siyu.cli import app

    monkeypatch.setenv("SIYU_LOG_LEVEL", "chatty")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    # then it exits 2 with the one line on stderr (before: a traceback from logging.setLevel)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("configuration error: SIYU_LOG_LEVEL: one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
                             "got 'chatty'\n")


def test_sandbox_off_without_credentials_names_the_first_missing_variable(monkeypatch):
    monkeypatch.setenv("SIYU_SANDBOX", "off")
    with pytest.raises(SettingsError, match=r"^SIYU_WECOM_CORP_ID: required when SIYU_SANDBOX=off"):
        load_settings()


WECOM = {"SIYU_WECOM_CORP_ID": "wx5823bf96d3bd56c7", "SIYU_WECOM_TOKEN": "QDG6eK",
         "SIYU_WECOM_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "SIYU_WECOM_CONTACT_SECRET": "s3cret"}
OA = {"SIYU_OA_APP_ID": "wxoa", "SIYU_OA_APP_SECRET": "s", "SIYU_OA_TOKEN": "t"}
MP = {"SIYU_MP_APP_ID": "wxmp", "SIYU_MP_APP_SECRET": "s", "SIYU_MP_TOKEN": "t"}


def _pay(tmp_path) -> dict:
    for name in ("apiclient_key.pem", "pub_key.pem"):
        (tmp_path / name).write_text("-----BEGIN PRIVATE KEY-----\n")
    return {"SIYU_PAY_MCH_ID": "1900000001", "SIYU_PAY_APIV3_KEY": "0123456789abcdef0123456789abcdef",
            "SIYU_PAY_PRIVATE_KEY_PATH": str(tmp_path / "apiclient_key.pem"), "SIYU_PAY_CERT_SERIAL": "5157F09EFDC",
            "SIYU_PAY_PUBLIC_KEY_PATH": str(tmp_path / "pub_key.pem"), "SIYU_PAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0001"}


def _env(monkeypatch, values: dict) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_a_valid_aes_key_is_accepted_and_the_channel_leaves_the_sandbox(monkeypatch):
    _env(monkeypatch, WECOM)
    s = load_settings()
    assert not s.uses_sandbox("wecom")
    assert s.uses_sandbox("official_account")


def test_every_channel_configured_completely_leaves_the_sandbox_with_aes_keys_and_agent_optional(monkeypatch, tmp_path):
    # given every channel with exactly what it needs (no OA/MP EncodingAESKey, no WeCom agent)
    _env(monkeypatch, {**WECOM, **OA, **MP, **_pay(tmp_path)})
    # when settings load (even with the sandbox off), then no channel uses the sandbox
    monkeypatch.setenv("SIYU_SANDBOX", "off")
    s = load_settings()
    assert not [c for c in ("wecom", "official_account", "miniprogram", "pay") if s.uses_sandbox(c)]


@pytest.mark.parametrize(("given", "missing", "why"), [
    # the example: a mini-program with app id and secret but no Token would answer every callback 500
    ({"SIYU_MP_APP_ID": "wxmp", "SIYU_MP_APP_SECRET": "s"}, "SIYU_MP_TOKEN", "callbacks are signed with it"),
    ({"SIYU_MP_TOKEN": "t"}, "SIYU_MP_APP_ID", "mini-program"),
    ({"SIYU_MP_AES_KEY": WECOM["SIYU_WECOM_AES_KEY"]}, "SIYU_MP_APP_ID", "mini-program"),
    ({"SIYU_OA_APP_ID": "wxoa", "SIYU_OA_TOKEN": "t"}, "SIYU_OA_APP_SECRET", "official account"),
    ({"SIYU_WECOM_CORP_ID": "ww1"}, "SIYU_WECOM_TOKEN", "callbacks are signed with it"),
    ({k: v for k, v in WECOM.items() if k != "SIYU_WECOM_CONTACT_SECRET"}, "SIYU_WECOM_CONTACT_SECRET", "客户联系"),
    ({"SIYU_WECOM_AGENT_SECRET": "a"}, "SIYU_WECOM_CORP_ID", "WeCom"),
    ({**WECOM, "SIYU_WECOM_AGENT_ID": "1000002"}, "SIYU_WECOM_AGENT_SECRET", "the two go together"),
    ({**WECOM, "SIYU_WECOM_AGENT_SECRET": "a"}, "SIYU_WECOM_AGENT_ID", "the two go together"),
    ({"SIYU_PAY_MCH_ID": "1900000001"}, "SIYU_PAY_APIV3_KEY", "WeChat Pay"),
])
def test_a_partly_configured_channel_stops_start_up_naming_the_first_missing_variable(monkeypatch, given, missing,
                                                                                     why):
    # given some of a channel's variables (which used to start, silently on the sandbox or failing at run time)
    _env(monkeypatch, given)
    # when settings load, then one line names the first missing variable, what set it off and why it is needed
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = str(exc.value)
    assert message.startswith(f"{missing}: required once SIYU_") and why in message and "\n" not in message


@pytest.mark.parametrize("dropped", ["SIYU_PAY_PUBLIC_KEY_PATH", "SIYU_PAY_PUBLIC_KEY_ID", "SIYU_PAY_CERT_SERIAL"])
def test_pay_without_its_public_key_or_serial_stops_start_up(monkeypatch, tmp_path, dropped):
    # given a merchant configured but for one of the values that verify answers or name the certificate
    _env(monkeypatch, {k: v for k, v in _pay(tmp_path).items() if k != dropped})
    # when settings load, then that variable is named (Pay would otherwise fall back to the sandbox)
    with pytest.raises(SettingsError, match=rf"^{dropped}: required once SIYU_PAY_MCH_ID is set \(WeChat Pay: "):
        load_settings()


def test_the_cli_refuses_a_half_configured_mini_program_before_serving(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from config.settings import get_settings
    from siyu.cli import app

    served = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: served.append(a))
    _env(monkeypatch, {"SIYU_DATABASE_URL": f"sqlite:///{tmp_path}/siyu.db", "SIYU_VAR_DIR": str(tmp_path / "var")})
    # given the mini-program of the issue: app id and secret, no SIYU_MP_TOKEN
    _env(monkeypatch, {"SIYU_MP_APP_ID": "wxmp", "SIYU_MP_APP_SECRET": "s"})
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve"])
    finally:
        get_settings.cache_clear()
    # then `siyu serve` stops at once with the one line, instead of answering every callback 500
    assert result.exit_code == 2 and served == []
    assert "SIYU_MP_TOKEN: required once SIYU_MP_APP_ID is set" in " ".join(result.output.split())


def test_the_cli_reports_a_misconfiguration_in_one_line_and_exits_2(monkeypatch):
    from typer.testing import CliRunner

    from config.settings import get_settings
    from siyu.cli import app

    monkeypatch.setenv("SIYU_WECOM_AES_KEY", "short")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "SIYU_WECOM_AES_KEY" in result.output
