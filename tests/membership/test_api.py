"""Admin API, membership slice: what each role of CONTRACT §3 may see and do."""
import pytest
from fastapi.testclient import TestClient

from config.database import session_scope
from membership.identity import IdentityIn, bind
from membership.service import add_relation, get_staff
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(settings):
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def world(client):
    """Two stores, a staff member in each, a customer of each, and a token per role."""
    for code in ("S1", "S2"):
        assert client.post("/api/v1/stores", json={"code": code, "name": f"店{code}"}, headers=ADMIN).status_code == 201
    for userid, store in (("zhang", "S1"), ("li", "S2")):
        r = client.post("/api/v1/staff", json={"userid": userid, "name": userid, "store": store}, headers=ADMIN)
        assert r.status_code == 201
    ids = {}
    with session_scope() as s:
        for userid, store_id, ext in (("zhang", 1, "wm-1"), ("li", 2, "wm-2")):
            m = bind(s, [IdentityIn("wecom_external", ext, "corp"), IdentityIn("phone", "13800138000" if ext == "wm-1"
                                                                                else "13900139000", verified=True)],
                     store_id=store_id, name=f"客户{ext}").member
            add_relation(s, staff=get_staff(s, userid), member_id=m.id, state="qr")
            ids[ext] = m.id
    tokens = {}
    for name, body in {
        "marketer": {"name": "m", "role": "marketer"},
        "manager1": {"name": "mgr", "role": "store_manager", "store": "S1"},
        "zhang": {"name": "z", "role": "staff", "staff": "zhang"},
    }.items():
        r = client.post("/api/v1/tokens", json=body, headers=ADMIN)
        assert r.status_code == 201
        tokens[name] = {"Authorization": f"Bearer {r.json()['token']}"}
    return ids, tokens


def test_requests_without_a_valid_token_are_401(client):
    assert client.get("/api/v1/stores").status_code == 401
    assert client.get("/api/v1/stores", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_admin_creates_a_store_and_reads_it_back(client):
    r = client.post("/api/v1/stores", json={"code": "S001", "name": "静安店", "city": "上海"}, headers=ADMIN)
    assert r.status_code == 201
    assert client.get("/api/v1/stores", headers=ADMIN).json() == [
        {"code": "S001", "name": "静安店", "city": "上海", "address": None}]
    assert client.post("/api/v1/stores", json={"code": "S001", "name": "x"}, headers=ADMIN).status_code == 409


def test_member_detail_has_the_contract_shape_and_masks_phones(client, world):
    ids, _ = world
    body = client.get(f"/api/v1/members/{ids['wm-1']}", headers=ADMIN).json()
    assert set(body) == {"id", "name", "store", "tags", "traits", "identities", "relations", "merged_into"}
    assert body["store"] == "S1"
    assert {"type": "phone", "scope": "", "value": "+86138****8000"} in body["identities"]
    assert "13800138000" not in str(body)
    assert body["relations"][0]["staff"] == "zhang" and body["relations"][0]["status"] == "active"


@pytest.mark.parametrize(("who", "sees"), [
    ("marketer", {"wm-1", "wm-2"}), ("manager1", {"wm-1"}), ("zhang", {"wm-1"}),
])
def test_each_role_sees_only_its_members(client, world, who, sees):
    ids, tokens = world
    items = client.get("/api/v1/members", headers=tokens[who]).json()["items"]
    listed = {i["value"] for m in items for i in m["identities"] if i["type"] == "wecom_external"}
    assert listed == sees
    for ext, member_id in ids.items():
        code = client.get(f"/api/v1/members/{member_id}", headers=tokens[who]).status_code
        assert code == (200 if ext in sees else 404)
        code = client.get(f"/api/v1/members/{member_id}/timeline", headers=tokens[who]).status_code
        assert code == (200 if ext in sees else 404)


@pytest.mark.parametrize(("who", "method", "path", "body", "allowed"), [
    ("marketer", "post", "/api/v1/tokens", {"name": "x", "role": "admin"}, False),
    ("manager1", "post", "/api/v1/tokens", {"name": "x", "role": "admin"}, False),
    ("marketer", "post", "/api/v1/stores", {"code": "S9", "name": "x"}, False),
    ("manager1", "post", "/api/v1/staff", {"userid": "w", "name": "w", "store": "S1"}, True),
    ("manager1", "post", "/api/v1/staff", {"userid": "w", "name": "w", "store": "S2"}, False),
    ("zhang", "post", "/api/v1/staff", {"userid": "w", "name": "w", "store": "S1"}, False),
    ("zhang", "get", "/api/v1/staff", None, False),
    ("marketer", "get", "/api/v1/staff", None, True),
    ("marketer", "get", "/api/v1/merge-reviews", None, False),
])
def test_role_permissions(client, world, who, method, path, body, allowed):
    _, tokens = world
    r = client.request(method, path, json=body, headers=tokens[who])
    assert (r.status_code < 300) == allowed, r.text
    if not allowed:
        assert r.status_code == 403


def test_stores_listed_are_limited_to_ones_own_for_a_store_manager(client, world):
    _, tokens = world
    assert [s["code"] for s in client.get("/api/v1/stores", headers=tokens["manager1"]).json()] == ["S1"]
    assert [s["code"] for s in client.get("/api/v1/stores", headers=tokens["marketer"]).json()] == ["S1", "S2"]


def test_lookup_by_identity_and_tagging(client, world):
    ids, tokens = world
    found = client.get("/api/v1/members", params={"external_userid": "wm-2"}, headers=tokens["marketer"]).json()
    assert [m["id"] for m in found["items"]] == [ids["wm-2"]]
    found = client.get("/api/v1/members", params={"phone": "+86 139 0013 9000"}, headers=ADMIN).json()
    assert [m["id"] for m in found["items"]] == [ids["wm-2"]]
    # staff tag their own customer; the tag and its timeline event appear
    r = client.post(f"/api/v1/members/{ids['wm-1']}/tags", json={"name": "近视"}, headers=tokens["zhang"])
    assert r.status_code == 201 and r.json()["tags"] == ["近视"]
    assert client.get("/api/v1/members", params={"tag": "近视"}, headers=ADMIN).json()["items"][0]["id"] == ids["wm-1"]
    events = client.get(f"/api/v1/members/{ids['wm-1']}/timeline", headers=ADMIN).json()["items"]
    assert events[0]["type"] == "tag.added" and events[0]["data"]["tag"] == "近视"
    # but not someone else's customer
    assert client.post(f"/api/v1/members/{ids['wm-2']}/tags", json={"name": "x"}, headers=tokens["zhang"]).status_code == 404
    assert client.delete(f"/api/v1/members/{ids['wm-1']}/tags/近视", headers=tokens["zhang"]).json()["tags"] == []


def test_members_page_with_a_cursor(client, world):
    ids, _ = world
    first = client.get("/api/v1/members", params={"limit": 1}, headers=ADMIN).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = client.get("/api/v1/members", params={"limit": 1, "cursor": first["next_cursor"]}, headers=ADMIN).json()
    assert second["next_cursor"] is None
    assert {first["items"][0]["id"], second["items"][0]["id"]} == set(ids.values())
