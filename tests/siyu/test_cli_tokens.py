"""`siyu token create|list|revoke`: results on stdout (the token alone, for TOKEN=$(…)), everything else on stderr."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from siyu.cli import app as cli
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(settings):
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


def _run(*args):
    return CliRunner().invoke(cli, ["token", *args])


def test_create_prints_only_a_working_token_on_stdout(client):
    # given a store
    client.post("/api/v1/stores", json={"code": "S1", "name": "一店"}, headers=ADMIN)
    # when a store manager's token is created from the command line
    result = _run("create", "--role", "store_manager", "--store", "S1", "--name", "一店店长")
    # then stdout is the token and nothing else, and stderr says which id it got
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("sy_")
    [listed] = client.get("/api/v1/tokens", headers=ADMIN).json()
    assert f"token {listed['id']} " in result.stderr
    assert (listed["name"], listed["role"], listed["store"]) == ("一店店长", "store_manager", "S1")
    # and the token opens the API with that role
    stores = client.get("/api/v1/stores", headers={"Authorization": f"Bearer {token}"})
    assert stores.status_code == 200 and [s["code"] for s in stores.json()] == ["S1"]


def test_list_shows_tokens_without_secrets_and_revoke_ends_one_at_once(client):
    # given two tokens made on the command line
    first = _run("create", "--role", "admin").stdout.strip()
    second = _run("create", "--role", "marketer", "--name", "市场部", "--expires-at", "2999-01-01T00:00:00+08:00")
    assert second.exit_code == 0, second.output
    # when they are listed
    listed = _run("list", "--json")
    rows = json.loads(listed.stdout)
    # then both show, with name, role and expiry, and no secret
    assert [(r["id"], r["name"], r["role"]) for r in rows] == [(1, "admin", "admin"), (2, "市场部", "marketer")]
    assert rows[1]["expires_at"].startswith("2998-12-31T16:00:00")
    assert first not in listed.stdout and first not in _run("list").stdout
    assert _run("list").stdout.splitlines()[0].split("\t")[:3] == ["id", "name", "role"]
    # when the first is revoked
    revoked = _run("revoke", "1")
    # then the command says so on stdout and the token is refused from the next request
    assert revoked.exit_code == 0 and revoked.stdout.strip() == "revoked 1"
    assert client.get("/api/v1/stores", headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert json.loads(_run("list", "--json").stdout)[0]["revoked_at"] is not None


@pytest.mark.parametrize(("args", "says"), [
    (["create", "--role", "store_manager"], "needs a store"),
    (["create", "--role", "staff", "--staff", "nobody"], "not found"),
    (["create", "--role", "root"], "role"),
    (["create", "--role", "admin", "--expires-at", "2020-01-01T00:00:00Z"], "future"),
    (["create", "--role", "admin", "--expires-at", "tomorrow"], "expires_at"),
    (["revoke", "42"], "not found"),
    (["revoke", str(2**63)], "Invalid value"),
])
def test_a_refused_command_exits_non_zero_with_the_reason_on_stderr_and_nothing_on_stdout(settings, args, says):
    result = _run(*args)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert says in result.stderr
