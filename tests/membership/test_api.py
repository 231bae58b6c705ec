"""Admin API, membership slice: what each role of CONTRACT §3 may see and do."""
import pytest
from fastapi.testclient import TestClient

from config.database import session_scope
from membership.identity import IdentityIn, bind
from membership.service import add_relation, ensure_staff, get_staff
from membership.tags import ensure_tag, get_tag
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
    # staff tag their own customer with a tag of the catalogue; the tag and its timeline event appear
    with session_scope() as s:
        ensure_tag(s, "近视")
    r = client.post(f"/api/v1/members/{ids['wm-1']}/tags", json={"name": "近视"}, headers=tokens["zhang"])
    assert r.status_code == 201 and r.json()["tags"] == ["近视"]
    assert client.get("/api/v1/members", params={"tag": "近视"}, headers=ADMIN).json()["items"][0]["id"] == ids["wm-1"]
    events = client.get(f"/api/v1/members/{ids['wm-1']}/timeline", headers=ADMIN).json()["items"]
    assert events[0]["type"] == "tag.added" and events[0]["data"]["tag"] == "近视"
    # but not someone else's customer
    r = client.post(f"/api/v1/members/{ids['wm-2']}/tags", json={"name": "x"}, headers=tokens["zhang"])
    assert r.status_code == 404
    assert client.delete(f"/api/v1/members/{ids['wm-1']}/tags/近视", headers=tokens["zhang"]).json()["tags"] == []


def test_members_page_with_a_cursor(client, world):
    ids, _ = world
    first = client.get("/api/v1/members", params={"limit": 1}, headers=ADMIN).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = client.get("/api/v1/members", params={"limit": 1, "cursor": first["next_cursor"]}, headers=ADMIN).json()
    assert second["next_cursor"] is None
    assert {first["items"][0]["id"], second["items"][0]["id"]} == set(ids.values())


# -- store managers and staff write only inside their own store (issue 8, item 6) ---------------------------
def _staff(client, userid):
    return next(s for s in client.get("/api/v1/staff", headers=ADMIN).json() if s["userid"] == userid)


@pytest.mark.parametrize("body", [
    {"userid": "li", "name": "李（被挪走）", "store": "S1"},  # S2's staff member, into S1
    {"userid": "li", "name": "李（改名）", "store": "S1", "role": "store_manager"},
])
def test_a_store_manager_cannot_take_over_another_stores_staff(client, world, body):
    _, tokens = world
    # when S1's manager posts S2's staff member into S1
    r = client.post("/api/v1/staff", json=body, headers=tokens["manager1"])
    # then it is refused and li is untouched
    assert r.status_code == 403, r.text
    assert _staff(client, "li") == {"userid": "li", "name": "li", "store": "S2", "role": "staff", "active": True,
                                    "source": "api"}


def test_a_store_manager_cannot_claim_staff_of_no_store(client, world):
    _, tokens = world
    # given a staff member WeCom named before any sync gave them a store
    with session_scope() as s:
        ensure_staff(s, "wang")
    # when S1's manager claims them, then only an admin may
    assert client.post("/api/v1/staff", json={"userid": "wang", "name": "王", "store": "S1"},
                       headers=tokens["manager1"]).status_code == 403
    assert _staff(client, "wang")["store"] is None
    assert client.post("/api/v1/staff", json={"userid": "wang", "name": "王", "store": "S1"},
                       headers=ADMIN).status_code == 201


def test_a_store_manager_updates_their_own_staff_and_a_role_not_given_is_kept(client, world):
    _, tokens = world
    # given zhang is made a store manager of S1 by an admin
    client.post("/api/v1/staff", json={"userid": "zhang", "name": "zhang", "store": "S1", "role": "store_manager"},
                headers=ADMIN)
    # when S1's manager renames zhang without naming a role
    r = client.post("/api/v1/staff", json={"userid": "zhang", "name": "张三", "store": "S1"},
                    headers=tokens["manager1"])
    # then the name changes and the role stays
    assert r.status_code == 201, r.text
    assert r.json() == {"userid": "zhang", "name": "张三", "store": "S1", "role": "store_manager", "active": True,
                        "source": "api"}


def test_an_admin_moves_staff_across_stores(client, world):
    r = client.post("/api/v1/staff", json={"userid": "li", "name": "li", "store": "S1"}, headers=ADMIN)
    assert r.status_code == 201 and r.json()["store"] == "S1"


@pytest.fixture
def manager2(client, world):
    r = client.post("/api/v1/tokens", json={"name": "mgr2", "role": "store_manager", "store": "S2"}, headers=ADMIN)
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_tags_on_another_stores_member_are_404_for_store_managers_and_staff(client, world, manager2):
    ids, tokens = world
    with session_scope() as s:
        ensure_tag(s, "VIP")
    client.post(f"/api/v1/members/{ids['wm-1']}/tags", json={"name": "VIP"}, headers=ADMIN)
    # when a store manager or staff member touches tags of a member they cannot see
    for who, member in ((manager2, ids["wm-1"]), (tokens["manager1"], ids["wm-2"]), (tokens["zhang"], ids["wm-2"])):
        assert client.post(f"/api/v1/members/{member}/tags", json={"name": "VIP"}, headers=who).status_code == 404
    assert client.delete(f"/api/v1/members/{ids['wm-1']}/tags/VIP", headers=manager2).status_code == 404
    # then nothing changed
    assert client.get(f"/api/v1/members/{ids['wm-1']}", headers=ADMIN).json()["tags"] == ["VIP"]
    assert client.get(f"/api/v1/members/{ids['wm-2']}", headers=ADMIN).json()["tags"] == []


@pytest.mark.parametrize(("who", "may_create"), [("manager1", False), ("zhang", False), ("marketer", True)])
def test_only_admins_and_marketers_create_tags_others_apply_existing_ones(client, world, who, may_create):
    ids, tokens = world
    with session_scope() as s:
        ensure_tag(s, "近视")
    # when a tag that is not in the catalogue is put on a visible member
    r = client.post(f"/api/v1/members/{ids['wm-1']}/tags", json={"name": "新标签"}, headers=tokens[who])
    # then only admins and marketers create it
    assert r.status_code == (201 if may_create else 403), r.text
    with session_scope() as s:
        assert (get_tag(s, "新标签") is not None) == may_create
    # and everybody applies a tag that exists
    r = client.post(f"/api/v1/members/{ids['wm-1']}/tags", json={"name": "近视"}, headers=tokens[who])
    assert r.status_code == 201 and "近视" in r.json()["tags"]
