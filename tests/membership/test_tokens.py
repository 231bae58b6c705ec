"""Admin API tokens: issued with an optional expiry, listed without secrets, revoked; dead tokens are 401 at once.

Also the secrets generated into var/ (bootstrap admin token, session key): private from their first byte.
"""
import os
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.settings import SettingsError, get_settings, load_settings
from config.types import utcnow
from membership.access import bootstrap_token
from membership.tokens import hash_token
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(settings):
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _issue(client, **body) -> dict:
    r = client.post("/api/v1/tokens", json={"name": "ops", "role": "marketer", **body}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_token_is_issued_with_its_id_and_listed_without_its_secret(client):
    # given a store and a staff member there
    client.post("/api/v1/stores", json={"code": "S1", "name": "一店"}, headers=ADMIN)
    client.post("/api/v1/staff", json={"userid": "zhang", "name": "张", "store": "S1"}, headers=ADMIN)
    # when an admin issues a marketer token and a staff token expiring in a day
    expires = (utcnow() + timedelta(days=1)).isoformat()
    marketer = _issue(client)
    staff = _issue(client, name="zhang's phone", role="staff", staff="zhang", expires_at=expires)
    # then each answer is the contract's {"id", "token"}
    assert set(marketer) == {"id", "token"} and marketer["id"] != staff["id"]
    # and the list shows scope and state, but neither secret nor hash
    r = client.get("/api/v1/tokens", headers=ADMIN)
    assert r.status_code == 200
    listed = {t["id"]: t for t in r.json()}
    assert set(listed[staff["id"]]) == {"id", "name", "role", "store", "staff", "created_at", "expires_at",
                                        "revoked_at"}
    assert listed[staff["id"]]["store"] == "S1" and listed[staff["id"]]["staff"] == "zhang"
    assert listed[staff["id"]]["expires_at"] is not None and listed[marketer["id"]]["expires_at"] is None
    assert marketer["token"] not in r.text and staff["token"] not in r.text
    assert hash_token(marketer["token"]) not in r.text


def test_a_revoked_token_is_401_on_its_very_next_request(client):
    # given a working marketer token
    token = _issue(client)
    assert client.get("/api/v1/stores", headers=_bearer(token["token"])).status_code == 200
    # when an admin revokes it
    assert client.delete(f"/api/v1/tokens/{token['id']}", headers=ADMIN).status_code == 204
    # then it is refused at once, and the list says when it was revoked
    assert client.get("/api/v1/stores", headers=_bearer(token["token"])).status_code == 401
    [listed] = client.get("/api/v1/tokens", headers=ADMIN).json()
    assert listed["revoked_at"] is not None
    # and revoking again changes nothing, while an unknown id is 404
    assert client.delete(f"/api/v1/tokens/{token['id']}", headers=ADMIN).status_code == 204
    assert client.get("/api/v1/tokens", headers=ADMIN).json()[0]["revoked_at"] == listed["revoked_at"]
    assert client.delete("/api/v1/tokens/999", headers=ADMIN).status_code == 404


def test_an_expired_token_is_401(client, monkeypatch):
    # given a token expiring in an hour, which works now
    token = _issue(client, expires_at=(utcnow() + timedelta(hours=1)).isoformat())
    assert client.get("/api/v1/stores", headers=_bearer(token["token"])).status_code == 200
    # when the clock passes its expiry
    later = utcnow() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr("membership.tokens.utcnow", lambda: later)
    # then it is refused, while the bootstrap token still works
    assert client.get("/api/v1/stores", headers=_bearer(token["token"])).status_code == 401
    assert client.get("/api/v1/stores", headers=ADMIN).status_code == 200


@pytest.mark.parametrize("expires_at", [
    "2000-01-01T00:00:00+08:00",  # past
    "2030-01-01T00:00:00",  # no offset
    "9999-12-31T23:59:59-08:00",  # beyond what Siyu stores
    "0001-01-01T00:00:00+08:00",
])
def test_an_expiry_must_be_an_aware_time_in_the_future_and_in_range(client, expires_at):
    r = client.post("/api/v1/tokens", json={"name": "x", "role": "admin", "expires_at": expires_at}, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert client.get("/api/v1/tokens", headers=ADMIN).json() == []


def test_a_staff_token_naming_a_store_must_name_the_staff_members_store(client):
    for code in ("S1", "S2"):
        client.post("/api/v1/stores", json={"code": code, "name": code}, headers=ADMIN)
    client.post("/api/v1/staff", json={"userid": "zhang", "name": "张", "store": "S1"}, headers=ADMIN)
    r = client.post("/api/v1/tokens", json={"name": "x", "role": "staff", "staff": "zhang", "store": "S2"},
                    headers=ADMIN)
    assert r.status_code == 422


def test_only_admins_list_and_revoke_tokens(client):
    marketer = _issue(client)
    assert client.get("/api/v1/tokens", headers=_bearer(marketer["token"])).status_code == 403
    assert client.delete(f"/api/v1/tokens/{marketer['id']}", headers=_bearer(marketer["token"])).status_code == 403
    assert client.get("/api/v1/tokens").status_code == 401


# -- secrets generated into var/ ------------------------------------------------------------------------
@pytest.fixture
def generated(tmp_path, monkeypatch):
    """Embedded settings without SIYU_ADMIN_TOKEN or SIYU_SECRET_KEY: both are generated into var/."""
    monkeypatch.setenv("SIYU_VAR_DIR", str(tmp_path / "var"))
    for name in ("SIYU_ADMIN_TOKEN", "SIYU_SECRET_KEY", "SIYU_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


MAKERS = {"admin_token": lambda: bootstrap_token(), "secret_key": lambda: get_settings().secret()}


@pytest.mark.parametrize("name", MAKERS)
def test_a_generated_secret_is_private_from_its_first_byte(generated, monkeypatch, name):
    # given a permissive umask, and no chmod taking effect after the file is written (the old window)
    monkeypatch.setattr(Path, "chmod", lambda self, mode, **kw: None)
    old = os.umask(0o022)
    try:
        # when the secret is generated
        value = MAKERS[name]()
    finally:
        os.umask(old)
    # then the file was created readable by its owner alone, and holds the value handed out
    path = generated / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == value and len(value) >= 24
    assert sorted(p.name for p in generated.iterdir()) == [name]  # no draft left behind


@pytest.mark.parametrize("name", MAKERS)
def test_concurrent_starters_end_with_one_secret(generated, monkeypatch, name):
    # given eight starters that all find no file and generate their own value at the same moment
    import secrets as real

    starters = 8
    barrier, mint = threading.Barrier(starters, timeout=10), real.token_urlsafe
    monkeypatch.setattr("secrets.token_urlsafe", lambda n=None: (barrier.wait(), mint(n))[1])
    got = []
    threads = [threading.Thread(target=lambda: got.append(MAKERS[name]())) for _ in range(starters)]
    # when they run
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # then all of them hand out the one value the file keeps
    assert len(got) == starters and len(set(got)) == 1
    assert (generated / name).read_text().strip() == got[0]


def test_a_secret_file_left_readable_by_an_older_version_is_made_private(generated):
    generated.mkdir(parents=True)
    (generated / "admin_token").write_text("sy_admin_" + "x" * 32)
    (generated / "admin_token").chmod(0o644)
    assert bootstrap_token() == "sy_admin_" + "x" * 32
    assert stat.S_IMODE((generated / "admin_token").stat().st_mode) == 0o600


@pytest.mark.parametrize("value", ["short", "y" * 23, "  " + "y" * 20 + "  "])
def test_an_admin_token_shorter_than_24_characters_is_refused(monkeypatch, value):
    # given SIYU_ADMIN_TOKEN too short to resist guessing, when settings load, then one line names the variable
    monkeypatch.setenv("SIYU_ADMIN_TOKEN", value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert str(exc.value).startswith("SIYU_ADMIN_TOKEN: must be at least 24 characters")
    assert value.strip() not in str(exc.value)  # a token never reaches a message
    # while 24 characters are enough
    monkeypatch.setenv("SIYU_ADMIN_TOKEN", "y" * 24)
    assert load_settings().admin_token == "y" * 24
