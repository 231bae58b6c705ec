"""CLI results go to stdout; logs, progress and reasons to stderr (CONTRACT §1): sync wecom, db upgrade, doctor."""
from __future__ import annotations

from typer.testing import CliRunner

from bot.sandbox.seed import seed_chain
from siyu.cli import app


def test_sync_wecom_prints_its_report_alone_on_stdout_and_its_progress_on_stderr(sandbox):
    # given a small chain in the sandbox
    seed_chain(sandbox, stores=1, staff=2, customers=5)
    # when it is synced from the command line
    result = CliRunner().invoke(app, ["sync", "wecom"])
    # then stdout is the one report line, and the progress bar went to stderr
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 and "staff" in result.stdout, result.stdout
    assert "sync wecom" in result.stderr and "sync wecom" not in result.stdout


def test_db_upgrade_says_where_the_schema_is_on_stdout(sqlite_settings, tmp_path, monkeypatch):
    from config.settings import get_settings

    # given an empty database
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path}/fresh.db")
    get_settings.cache_clear()
    # when the schema is upgraded, then the result is one line on stdout (Alembic's log lines go to stderr)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("database at head: ") and len(result.stdout.splitlines()) == 1
    assert "Running upgrade" in result.stderr


def test_doctor_prints_its_findings_on_stdout(sandbox):
    # when the doctor checks a schema that is not there, then its one line per check is on stdout, not stderr
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines and all(line[:2] in ("✓ ", "✗ ") for line in lines), result.stdout
    assert any("run `siyu db upgrade`" in line for line in lines)
    assert "✓" not in result.stderr and "✗" not in result.stderr
