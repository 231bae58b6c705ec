"""var/ is private: the directory 0700, every file Siyu keeps in it 0600, whatever the umask and the tree's age."""
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from config.settings import get_settings


@pytest.fixture
def permissive_umask():
    """The common default umask (022), under which files are created world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def var_settings(tmp_path, monkeypatch, permissive_umask):
    """Embedded settings whose SQLite database lives in a var/ that does not exist yet."""
    for name in list(os.environ):
        if name.startswith("SIYU_"):
            monkeypatch.delenv(name)
    var = tmp_path / "var"
    monkeypatch.setenv("SIYU_VAR_DIR", str(var))
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{var}/siyu.db")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _modes(var: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(var.stat().st_mode))}
    for path in var.rglob("*"):
        found[str(path.relative_to(var))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def _loose(modes: dict[str, str], var: Path) -> dict[str, str]:
    return {name: mode for name, mode in modes.items()
            if mode != ("0o700" if (var / name).is_dir() else "0o600")}


def test_everything_siyu_writes_into_a_new_var_dir_is_private(var_settings):
    from bot.credentials import sandbox_pay_credentials, wecom_credentials
    from bot.tokens import token_cache_from_settings
    from config.database import make_engine
    from membership.access import bootstrap_token

    var = var_settings.var_dir
    # when the database is opened (its -wal and -shm files appear while a connection is open)
    engine = make_engine(var_settings.database_url)
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.commit()
        # and the token cache, the sandbox keys, the secret key and the admin token are made
        token_cache_from_settings(var_settings)
        wecom_credentials(var_settings)
        sandbox_pay_credentials(var_settings)
        var_settings.secret()
        bootstrap_token()
        modes = _modes(var)
    engine.dispose()
    # then var/ and its subdirectories are 0700 and every file in them 0600
    assert {"siyu.db", "siyu.db-wal", "siyu.db-shm", "tokens.db", "secret_key", "admin_token",
            "sandbox/wecom_aes_key", "sandbox/pay_merchant_key.pem", "sandbox/pay_platform_pub.pem"} <= set(modes)
    assert _loose(modes, var) == {}


def test_a_var_dir_left_readable_by_an_older_release_is_tightened_at_start(var_settings):
    from typer.testing import CliRunner

    from siyu.cli import app

    # given a var/ readable by everyone, with a readable database, token and sandbox key
    var = var_settings.var_dir
    (var / "sandbox").mkdir(parents=True)
    var.chmod(0o755)
    (var / "sandbox").chmod(0o755)
    for name in ("admin_token", "sandbox/wecom_token"):
        (var / name).write_text("old")
        (var / name).chmod(0o644)
    # when any `siyu` command starts (here: the migrations `make run` applies first)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    # then the tree is private again, the new database included
    assert result.exit_code == 0, result.output
    modes = _modes(var)
    assert "siyu.db" in modes and _loose(modes, var) == {}
