"""The admin API's segments slice (CONTRACT §3)."""
from __future__ import annotations

from config.database import session_scope
from membership.tokens import issue_token
from membership.models import Member, Role
from membership.tags import ensure_tag, tag_member


def _vip_members(n: int, tagged: int) -> list[int]:
    with session_scope() as s:
        rows = [Member(name=f"m{i}") for i in range(n)]
        s.add_all(rows)
        s.flush()
        vip = ensure_tag(s, "VIP")
        for m in rows[:tagged]:
            tag_member(s, m.id, vip)
        return [m.id for m in rows]


def test_preview_create_get_members_and_refresh(client, drain):
    """Given 5 VIPs of 7 members, when a marketer previews, saves and pages the segment, then every answer agrees."""
    ids = _vip_members(7, 5)
    drain()
    definition = {"any": [{"tag": "VIP"}, {"store": "S404"}]}
    r = client.post("/api/v1/segments/preview", json={"definition": definition})
    assert r.status_code == 200 and r.json() == {"count": 5, "sample": ids[:5]}
    r = client.post("/api/v1/segments", json={"name": "VIPs", "definition": definition})
    assert r.status_code == 201
    sid = r.json()["id"]
    drain()
    seg = client.get(f"/api/v1/segments/{sid}").json()
    assert (seg["size"], seg["name"], seg["definition"]) == (5, "VIPs", definition)
    assert seg["refreshed_at"] is not None and seg["last_refresh_ms"] is not None
    page = client.get(f"/api/v1/segments/{sid}/members", params={"limit": 2}).json()
    seen = [i["id"] for i in page["items"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/segments/{sid}/members", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [i["id"] for i in page["items"]]
    assert seen == ids[:5]
    r = client.post(f"/api/v1/segments/{sid}/refresh")
    assert r.status_code == 200 and r.json()["size"] == 5 and r.json()["last_entered"] == 0
    assert [s["id"] for s in client.get("/api/v1/segments").json()] == [sid]


def test_invalid_definitions_answer_422_naming_the_node(client):
    """Given a broken leaf or a missing reference, when previewed or saved, then 422 names the node."""
    bad = {"definition": {"all": [{"tag": "VIP"}, {"trait": "x", "op": "bad"}]}}
    r = client.post("/api/v1/segments/preview", json=bad)
    assert r.status_code == 422 and r.json()["detail"].startswith("$.all[1].op")
    r = client.post("/api/v1/segments", json={"name": "x", "definition": {"not": {"segment": 41}}})
    assert r.status_code == 422 and "$.not.segment" in r.json()["detail"]
    assert client.get("/api/v1/segments/999").status_code == 404


def test_a_store_manager_may_not_touch_segments(client):
    """Given a store manager's token, when they call the segments API, then 403."""
    from membership.service import create_store

    with session_scope() as s:
        store = create_store(s, code="S001", name="一店")
        _, token = issue_token(s, name="mgr", role=Role.store_manager, store_id=store.id)
    r = client.post("/api/v1/segments/preview", json={"definition": {"tag": "VIP"}},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_tag_rules_are_created_listed_and_validated(client, drain):
    """Given a segment, when a rule is posted for it, then current members get the tag, attributed to the rule."""
    ids = _vip_members(3, 2)
    sid = client.post("/api/v1/segments", json={"name": "VIPs", "definition": {"tag": "VIP"}}).json()["id"]
    drain()
    r = client.post("/api/v1/tag-rules", json={"name": "vip care", "tag": "重点客户", "segment_id": sid,
                                                "remove_on_leave": True})
    assert r.status_code == 201, r.text
    rule = r.json()
    drain()
    for mid in ids[:2]:
        tags = client.get(f"/api/v1/members/{mid}").json()["tags"]
        assert any((t["name"] if isinstance(t, dict) else t) == "重点客户" for t in tags)
    assert client.get("/api/v1/tag-rules").json() == [rule]
    assert client.post("/api/v1/tag-rules", json={"name": "x", "tag": "y"}).status_code == 422
    assert client.post("/api/v1/tag-rules", json={"name": "x", "tag": "y", "segment_id": 999}).status_code == 404
