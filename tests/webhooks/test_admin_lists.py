"""GET /api/v1/channel-codes, /oa-qrcodes and /auto-replies: cursor-paged, scoped by role as their POSTs are."""
from __future__ import annotations

import pytest

from tests.webhooks.conftest import ADMIN


def _token(client, role: str, **scope) -> dict:
    r = client.post("/api/v1/tokens", json={"name": role, "role": role, **scope}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _all_pages(client, path: str, headers: dict, limit: int) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        r = client.get(path, params={"limit": limit, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert r.status_code == 200, r.text
        pages.append(r.json()["items"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return pages


@pytest.fixture
def chain(client):
    """Stores S001 and S002, zhangsan in S001 and lisi in S002."""
    for code in ("S001", "S002"):
        client.post("/api/v1/stores", json={"code": code, "name": code}, headers=ADMIN)
    for userid, store in (("zhangsan", "S001"), ("lisi", "S002")):
        client.post("/api/v1/staff", json={"userid": userid, "name": userid, "store": store}, headers=ADMIN)


def test_channel_codes_are_listed_a_page_at_a_time_and_a_store_manager_sees_their_stores(client, fake_wecom, chain):
    # given three codes, two of S001 (one with a tag and a welcome) and one of S002
    made = []
    for name, store, staff in (("门口", "S001", "zhangsan"), ("收银台", "S002", "lisi"), ("橱窗", "S001", "zhangsan")):
        body = {"name": name, "store": store, "staff": [staff], "tags": ["到店"] if name == "门口" else []}
        if name == "门口":
            body["welcome"] = {"text": "欢迎光临"}
        r = client.post("/api/v1/channel-codes", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
        made.append(r.json())
    # when a marketer lists them two at a time
    pages = _all_pages(client, "/api/v1/channel-codes", _token(client, "marketer"), limit=2)
    # then every code comes once, oldest first, over two pages, as its POST answered it
    assert [len(p) for p in pages] == [2, 1]
    listed = [c for p in pages for c in p]
    assert listed == made
    first = listed[0]
    assert (first["name"], first["store"], first["staff"], first["tags"], first["welcome"]) == (
        "门口", "S001", ["zhangsan"], ["到店"], {"text": "欢迎光临"})
    assert first["state"].startswith("sy") and first["config_id"] and first["created_at"]
    # and S001's manager sees S001's two codes only
    manager = _token(client, "store_manager", store="S001")
    mine = client.get("/api/v1/channel-codes", headers=manager).json()
    assert [c["name"] for c in mine["items"]] == ["门口", "橱窗"] and mine["next_cursor"] is None
    # and staff may not list codes, nor anyone without a token; a cursor the API never gave is 422
    assert client.get("/api/v1/channel-codes", headers=_token(client, "staff", staff="zhangsan")).status_code == 403
    assert client.get("/api/v1/channel-codes").status_code == 401
    assert client.get("/api/v1/channel-codes", params={"cursor": "x"}, headers=ADMIN).status_code == 422


def test_oa_qrcodes_are_listed_for_marketers(client, fake_oa, chain):
    # given two QR codes, one for a staff member, one expiring
    one = client.post("/api/v1/oa-qrcodes", json={"store": "S001", "name": "海报", "staff": "zhangsan"}, headers=ADMIN)
    two = client.post("/api/v1/oa-qrcodes", json={"store": "S002", "name": "传单", "expire_seconds": 3600},
                      headers=ADMIN)
    assert one.status_code == two.status_code == 201
    # when a marketer lists them one at a time
    pages = _all_pages(client, "/api/v1/oa-qrcodes", _token(client, "marketer"), limit=1)
    # then both come, with their store, staff member and expiry
    assert [p for p in pages if p] == [[one.json()], [two.json()]]
    assert (one.json()["store"], one.json()["staff"], one.json()["expire_seconds"]) == ("S001", "zhangsan", None)
    assert (two.json()["store"], two.json()["expire_seconds"]) == ("S002", 3600)
    # and a store manager may not, as they may not create them
    assert client.get("/api/v1/oa-qrcodes", headers=_token(client, "store_manager", store="S001")).status_code == 403


def test_auto_replies_are_listed_for_marketers(client, chain):
    # given three rules
    rules = [client.post("/api/v1/auto-replies", json={"name": f"r{i}", "keywords": [f"k{i}"], "reply_text": "好的"},
                         headers=ADMIN).json() for i in range(3)]
    # when a marketer lists them two at a time
    pages = _all_pages(client, "/api/v1/auto-replies", _token(client, "marketer"), limit=2)
    # then all three come once, as created
    assert [r for p in pages for r in p] == rules and [len(p) for p in pages] == [2, 1]
    assert rules[0]["keywords"] == ["k0"] and rules[0]["active"] is True
    # and a store manager may not
    assert client.get("/api/v1/auto-replies", headers=_token(client, "store_manager", store="S001")).status_code == 403
