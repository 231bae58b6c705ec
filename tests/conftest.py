"""Shared fixtures: every database test runs on SQLite, and on PostgreSQL when SIYU_TEST_DATABASE_URL is set.

SIYU_REQUIRE_SERVICES=1 (CI) turns a missing or unreachable PostgreSQL or Redis into a failure.
"""
from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from fastapi import FastAPI, Request, Response

from config.database import engine_for, session_scope
from config.settings import get_settings
from siyu import wiring

wiring.install()  # as the app, the worker, the scheduler and every CLI command do

# Hypothesis' per-example deadline is a timed assertion: on a loaded two-core machine it fails examples that are
# merely slow. Properties are checked without it; speed is measured in bench/.
hypothesis_settings.register_profile("siyu", deadline=None)
hypothesis_settings.load_profile("siyu")

PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("SIYU_TEST_REDIS_URL")
REQUIRE = os.environ.get("SIYU_REQUIRE_SERVICES") == "1"

# The bootstrap admin token of the test settings (tests never spell it out: use this constant).
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"

DB_PARAMS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _missing(what: str, var: str):
    if REQUIRE:
        pytest.fail(f"{what} is required (SIYU_REQUIRE_SERVICES=1) but {var} is not set or unreachable")
    pytest.skip(f"{what}: set {var} to run")


_pg_ready = False


def _prepare_postgres() -> str:
    """Create the schema once per run; afterwards each test starts from empty tables."""
    global _pg_ready
    from siyu.models import metadata

    engine = engine_for(PG_URL)
    if not _pg_ready:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        metadata.create_all(engine)
        _pg_ready = True
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return PG_URL


@pytest.fixture(autouse=True)
def _one_process_metrics(monkeypatch, tmp_path_factory):
    """Commands invoked in-process turn multiprocess metrics on (config.metrics.enable): undone after each test.

    The directories Siyu picks for them (in the temporary directory) go under pytest's, here and in the
    processes tests start, instead of piling up in /tmp.
    """
    import tempfile

    from prometheus_client import values

    temp = tmp_path_factory.getbasetemp() / "tmp"
    temp.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)


@pytest.fixture(params=DB_PARAMS)
def db_url(request, tmp_path) -> str:
    """A database URL with Siyu's schema and no rows: SQLite in tmp_path, or the test PostgreSQL."""
    from siyu.models import metadata

    if request.param == "postgresql":
        if not PG_URL:
            _missing("PostgreSQL", "SIYU_TEST_DATABASE_URL")
        return _prepare_postgres()
    url = f"sqlite:///{tmp_path}/siyu.db"
    metadata.create_all(engine_for(url))
    return url


@pytest.fixture
def pg_url() -> str:
    """The test PostgreSQL only (for concurrency proofs), emptied."""
    if not PG_URL:
        _missing("PostgreSQL", "SIYU_TEST_DATABASE_URL")
    return _prepare_postgres()


@pytest.fixture
def redis_url():
    """The test Redis, flushed."""
    if not REDIS_URL:
        _missing("Redis", "SIYU_TEST_REDIS_URL")
    from redis import Redis

    try:
        Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except Exception as exc:  # noqa: BLE001
        if REQUIRE:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis unreachable: {exc}")
    return REDIS_URL


@pytest.fixture
def settings(db_url, tmp_path, monkeypatch):
    """Process settings pointing at `db_url`, embedded mode, var/ in tmp_path, sandbox everywhere."""
    monkeypatch.setenv("SIYU_DATABASE_URL", db_url)
    monkeypatch.delenv("SIYU_REDIS_URL", raising=False)
    monkeypatch.setenv("SIYU_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SIYU_ADMIN_TOKEN", ADMIN_TOKEN)
    for name in list(os.environ):
        if name.startswith(("SIYU_WECOM_", "SIYU_OA_", "SIYU_MP_", "SIYU_PAY_")):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield get_settings()
    # Jobs a test left running must finish before the next test empties the tables under them.
    from config.queue import in_process_runner

    in_process_runner().drain(30)
    get_settings.cache_clear()


@pytest.fixture
def session(settings):
    """A session on the test database, committed when the test ends."""
    with session_scope() as s:
        yield s


@pytest.fixture
def engine(settings):
    """The engine of the test database."""
    return engine_for(settings.database_url)


@pytest.fixture
def stand_in():
    """Replace Tencent clients for the rest of the test through bot.clients' one seam: `stand_in(wecom=fake)`."""
    from bot.clients import override

    with contextlib.ExitStack() as stack:
        yield lambda **clients: stack.enter_context(override(**clients))


# -- the Tencent sandbox over real HTTP (wechatpy speaks `requests`, not ASGI) ------------------------
CAPTURED: list[dict] = []  # what the sandbox POSTed to /capture/<name>


@pytest.fixture
def captured():
    """What the sandbox POSTed to the capture endpoint during the test."""
    CAPTURED.clear()
    return CAPTURED


@pytest.fixture(scope="session")
def sandbox_server():
    """A Siyu-shaped app with the sandbox mounted at /sandbox, served on a free port; yields its base URL."""
    from bot.sandbox.app import create_sandbox_app
    from bot.sandbox.serve import serve_in_background

    app = FastAPI()
    app.mount("/sandbox", create_sandbox_app())

    @app.api_route("/capture/{name}", methods=["GET", "POST"])
    async def capture(name: str, request: Request):
        # Stands in for Siyu's webhooks: records what the sandbox sent.
        CAPTURED.append({"name": name, "method": request.method, "query": dict(request.query_params),
                         "headers": dict(request.headers), "body": await request.body()})
        return Response(b"")

    served = serve_in_background(app)
    yield served.url
    served.stop()




@pytest.fixture
def sandbox(sandbox_server, settings, monkeypatch):
    """An empty sandbox state; settings (the directory's `settings`) and clients point at the served sandbox."""
    from bot.clients import reset_clients
    from bot.sandbox.state import reset_state
    from config.queue import in_process_runner

    monkeypatch.setenv("SIYU_PUBLIC_URL", sandbox_server)
    monkeypatch.setenv("SIYU_WECHAT_BACKOFF_BASE", "0.001")
    get_settings.cache_clear()
    reset_clients()
    yield reset_state()
    in_process_runner().drain(30)  # jobs the test queued use its database and its sandbox
    reset_clients()
    get_settings.cache_clear()
