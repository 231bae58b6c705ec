"""`siyu doctor`: one line per check, with the fix when it fails."""
from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import text

from config.database import get_engine
from config.redact import redact
from config.redis import get_redis
from config.settings import get_settings


def run_checks() -> Iterator[tuple[bool, str]]:
    """(ok, line) for the database, its schema, Redis, and each Tencent channel (a real round trip each)."""
    # A driver's or a library's error text may quote a URL or a key: no line leaves unredacted.
    for ok, line in _checks():
        yield ok, redact(line)


def _checks() -> Iterator[tuple[bool, str]]:
    settings = get_settings()
    yield from _database()
    redis = get_redis()
    if redis is None:
        yield True, "redis: not configured (embedded mode: jobs run inside `siyu serve`)"
    else:
        try:
            redis.ping()
            yield True, f"redis: {settings.redis_url.split('@')[-1]} answers"
        except Exception as exc:  # noqa: BLE001
            yield False, f"redis: {exc.__class__.__name__}: {exc} — check SIYU_REDIS_URL and that redis-server runs"
    from bot.doctor import run_checks as channel_checks

    for check in channel_checks():
        yield check.ok, check.line


def _database() -> Iterator[tuple[bool, str]]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from siyu.db import alembic_config

    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:  # noqa: BLE001
        yield False, f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0]} — check SIYU_DATABASE_URL"
        return
    yield True, f"database: {get_engine().url.render_as_string(hide_password=True)} answers"
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if current == head:
        yield True, f"schema: at {head}"
    else:
        yield False, f"schema: at {current or 'nothing'}, code expects {head} — run `siyu db upgrade`"
