"""The served app: operations endpoints, OpenAPI docs, and `siyu doctor`."""
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner


@pytest.fixture
def client(settings):
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


def test_healthz_readyz_metrics_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/tokens", "/api/v1/stores", "/api/v1/staff", "/api/v1/members/{member_id}"} <= set(paths)


def test_readyz_is_503_when_redis_is_configured_but_down(settings, monkeypatch):
    from config.settings import get_settings
    from siyu.app import create_app

    monkeypatch.setenv("SIYU_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    with TestClient(create_app()) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["database"] == "ok" and r.json()["checks"]["redis"].startswith("error")


def test_doctor_says_the_schema_needs_upgrading_then_is_green(settings, tmp_path, monkeypatch, sandbox_server):
    from bot.clients import reset_clients
    from bot.sandbox.state import reset_state
    from config.settings import get_settings
    from siyu.cli import app

    # given an empty database file, and the sandbox answering for every channel
    monkeypatch.setenv("SIYU_DATABASE_URL", f"sqlite:///{tmp_path}/fresh.db")
    monkeypatch.setenv("SIYU_PUBLIC_URL", sandbox_server)
    get_settings.cache_clear()
    reset_clients()
    reset_state()  # whatever an earlier test left in the shared sandbox (cleared secrets, dead tokens)
    first = CliRunner().invoke(app, ["doctor"])
    assert first.exit_code == 1
    assert "run `siyu db upgrade`" in first.output
    # when the schema is upgraded
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    # then every check is green, one line each
    second = CliRunner().invoke(app, ["doctor"])
    assert second.exit_code == 0, second.output
    assert "schema: at" in second.output
    assert "wecom contact secret: the sandbox answers get_follow_user_list" in second.output
    assert "✓ pay (merchant 1900000001): the sandbox answers a signed order query (ORDER_NOT_EXIST, as it should)\n" \
        in second.output
    reset_clients()
