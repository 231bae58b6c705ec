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


def test_sandbox_off_without_credentials_names_the_first_missing_variable(monkeypatch):
    monkeypatch.setenv("SIYU_SANDBOX", "off")
    with pytest.raises(SettingsError, match=r"^SIYU_WECOM_CORP_ID: required when SIYU_SANDBOX=off"):
        load_settings()


def test_a_valid_aes_key_is_accepted_and_the_channel_leaves_the_sandbox(monkeypatch):
    monkeypatch.setenv("SIYU_WECOM_CORP_ID", "wx5823bf96d3bd56c7")
    monkeypatch.setenv("SIYU_WECOM_TOKEN", "QDG6eK")
    monkeypatch.setenv("SIYU_WECOM_AES_KEY", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
    monkeypatch.setenv("SIYU_WECOM_CONTACT_SECRET", "s3cret")
    s = load_settings()
    assert not s.uses_sandbox("wecom")
    assert s.uses_sandbox("official_account")


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
