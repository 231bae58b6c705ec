"""PATCH and DELETE /api/v1/segments/{id}: rename, redefine (and what that does to segments using it), delete."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError

from config.database import engine_for, session_scope
from config.settings import get_settings
from membership.models import Member
from membership.tags import ensure_tag, tag_member
from segments import service, usage
from segments.exceptions import InvalidDefinition
from segments.models import Segment, SegmentMembership
from siyu import db


def _members(tags: list[str | None]) -> list[int]:
    with session_scope() as s:
        rows = [Member(name=f"m{i}") for i in range(len(tags))]
        s.add_all(rows)
        s.flush()
        for m, tag in zip(rows, tags, strict=True):
            if tag:
                tag_member(s, m.id, ensure_tag(s, tag))
        return [m.id for m in rows]


def _inside(segment_id: int) -> set[int]:
    with session_scope() as s:
        return set(s.scalars(select(SegmentMembership.member_id).where(SegmentMembership.segment_id == segment_id)))


def _create(client, name: str, definition: dict) -> int:
    r = client.post("/api/v1/segments", json={"name": name, "definition": definition})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_redefinition_refreshes_the_segment_and_every_segment_using_it(client, drain, monkeypatch):
    """Given X (VIPs) and Y (X, referenced), when X is renamed and then redefined (twice), then both hold the members
    of X's new definition, Y's depends_on follows it, and per-event re-checks of Y evaluate X's new definition
    (the compiled predicates cached for Y were invalidated, also when Y's depends_on did not change)."""
    # given
    vip, gold, plain = _members(["VIP", "金卡", None])
    x = _create(client, "VIPs", {"tag": "VIP"})
    y = _create(client, "uses X", {"all": [{"segment": x}, {"not": {"tag": "blocked"}}]})
    drain()
    assert _inside(x) == _inside(y) == {vip}
    with session_scope() as s:  # an event re-checks both: their per-event predicates are compiled and cached now
        tag_member(s, plain, ensure_tag(s, "other"))
    drain()
    # when renamed
    r = client.patch(f"/api/v1/segments/{x}", json={"name": "best"})
    assert r.status_code == 200 and (r.json()["name"], r.json()["definition"]) == ("best", {"tag": "VIP"}), r.text
    # when redefined
    r = client.patch(f"/api/v1/segments/{x}", json={"definition": {"tag": "金卡"}})
    assert r.status_code == 200 and r.json()["definition"] == {"tag": "金卡"} and r.json()["name"] == "best", r.text
    drain()
    # then
    assert _inside(x) == _inside(y) == {gold}
    assert "tag:金卡" in client.get(f"/api/v1/segments/{y}").json()["depends_on"]
    assert "tag:VIP" not in client.get(f"/api/v1/segments/{y}").json()["depends_on"]
    # when a member becomes 金卡, then the per-event re-check puts them in both
    with session_scope() as s:
        tag_member(s, plain, ensure_tag(s, "金卡"))
    drain()
    assert _inside(x) == _inside(y) == {gold, plain}
    # when X is redefined once more, leaving what Y depends on as it was, and an event re-checks Y before the
    # refreshes have run (a full refresh rewrites the segment row, which would invalidate the cache anyway)
    monkeypatch.setattr(service, "refresh_segment_job", lambda segment_id: None)
    assert client.patch(f"/api/v1/segments/{x}", json={"definition": {"not": {"tag": "金卡"}}}).status_code == 200
    with session_scope() as s:
        tag_member(s, vip, ensure_tag(s, "金卡"))
    drain()
    # then Y evaluated X's new definition (vip is 金卡: not in X), not the one its cached predicate was compiled with
    assert vip not in _inside(y)


def test_a_patch_that_would_break_this_or_a_referencing_segment_is_refused(client, drain):
    """Given X ← Y ← Z ← W (each referencing the one before ten times), when X is redefined into a cycle, into an
    invalid definition, or so large that W passes the expansion cap, then 422 (naming W) and nothing changes."""
    # given
    x = _create(client, "X", {"tag": "VIP"})
    y = _create(client, "Y", {"any": [{"segment": x}] * 10})
    z = _create(client, "Z", {"any": [{"segment": y}] * 10})
    w = _create(client, "W", {"any": [{"segment": z}] * 10})
    # when / then: cycles through itself, directly or not
    for definition in ({"segment": x}, {"not": {"segment": w}}):
        r = client.patch(f"/api/v1/segments/{x}", json={"definition": definition})
        assert r.status_code == 422 and "cycle" in r.json()["detail"], r.text
    r = client.patch(f"/api/v1/segments/{x}", json={"definition": {"trait": "age", "op": "bad"}})
    assert r.status_code == 422 and r.json()["detail"].startswith("$.op"), r.text
    # when X grows to 11 nodes, W would have 11,111 once inlined
    r = client.patch(f"/api/v1/segments/{x}", json={"definition": {"any": [{"tag": f"t{i}"} for i in range(10)]}})
    assert r.status_code == 422
    assert f"segment {w} «W»" in r.json()["detail"] and "MAX_EXPANDED_NODES" in r.json()["detail"]
    # then nothing changed
    assert client.get(f"/api/v1/segments/{x}").json()["definition"] == {"tag": "VIP"}
    # and a bad body, an empty one or an unknown segment are refused
    assert client.patch(f"/api/v1/segments/{x}", json={}).status_code == 422
    assert client.patch(f"/api/v1/segments/{x}", json={"name": ""}).status_code == 422
    assert client.patch(f"/api/v1/segments/{x}", json={"name": None}).status_code == 422
    assert client.patch("/api/v1/segments/999", json={"name": "x"}).status_code == 404
    # and a change W can absorb is accepted
    r = client.patch(f"/api/v1/segments/{x}", json={"definition": {"any": [{"tag": "VIP"}, {"tag": "金卡"}]}})
    assert r.status_code == 200, r.text
    drain()


def test_delete_is_refused_while_a_segment_a_rule_or_a_campaign_uses_it(client, drain, monkeypatch):
    """Given X used by segment Y, by a tag rule and by a (registered) campaign, when X is deleted, then 409 names
    each user until none is left; then 204, its membership goes, and it is 404 from then on."""
    # given
    (vip,) = _members(["VIP"])
    x = _create(client, "VIPs", {"tag": "VIP"})
    y = _create(client, "uses X", {"not": {"segment": x}})
    rule = client.post("/api/v1/tag-rules", json={"name": "vip care", "tag": "重点", "segment_id": x}).json()["id"]
    monkeypatch.setattr(usage, "USERS", [])
    usage.uses(lambda session, segment_id: ["campaign 7 «双十二»"] if segment_id == x else [])
    drain()
    assert _inside(x) == {vip}
    # when / then
    r = client.delete(f"/api/v1/segments/{x}")
    assert r.status_code == 409, r.text
    for name in (f"segment {y} «uses X»", f"tag rule {rule} «vip care»", "campaign 7 «双十二»"):
        assert name in r.json()["detail"]
    assert client.delete(f"/api/v1/segments/{y}").status_code == 204
    with session_scope() as s:
        s.execute(text("DELETE FROM tag_rules"))
    r = client.delete(f"/api/v1/segments/{x}")
    assert r.status_code == 409 and "segment" not in r.json()["detail"].split("in use by")[1], r.text
    monkeypatch.setattr(usage, "USERS", [])
    assert client.delete(f"/api/v1/segments/{x}").status_code == 204
    # then
    assert client.get(f"/api/v1/segments/{x}").status_code == 404
    assert client.delete(f"/api/v1/segments/{x}").status_code == 404
    assert _inside(x) == set()


def test_the_database_refuses_to_delete_a_segment_in_use(settings):
    """Given X referenced by Y and used by a rule, when X is deleted past the service, then the database refuses."""
    # given
    with session_scope() as s:
        x = service.create_segment(s, name="X", definition={"tag": "VIP"}).id
        y = service.create_segment(s, name="Y", definition={"segment": x}).id
    # when / then
    with pytest.raises(IntegrityError), session_scope() as s:
        s.execute(delete(Segment).where(Segment.id == x))
    with session_scope() as s:
        s.execute(delete(Segment).where(Segment.id == y))
        service.create_tag_rule(s, name="r", tag="t", segment_id=x, apply_to_current=False)
    with pytest.raises(IntegrityError), session_scope() as s:
        s.execute(delete(Segment).where(Segment.id == x))


def _waiting_for_a_lock(url: str) -> bool:
    with engine_for(url).connect() as conn:
        return bool(conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND datname = current_database()")))


def test_two_redefinitions_cannot_make_a_cycle_together(pg_url, monkeypatch):
    """Given X and Y, when X is redefined to use Y while (before X commits) Y is redefined to use X, then the second
    waits for the first and is refused as a cycle; no cycle is stored."""
    monkeypatch.setenv("SIYU_DATABASE_URL", pg_url)
    monkeypatch.delenv("SIYU_REDIS_URL", raising=False)
    get_settings.cache_clear()
    # given
    with session_scope() as s:
        x = service.create_segment(s, name="X", definition={"tag": "VIP"}).id
        y = service.create_segment(s, name="Y", definition={"tag": "金卡"}).id
    outcome: list[object] = []

    def second() -> None:
        try:
            with session_scope() as s:
                service.update_segment(s, segment_id=y, definition={"segment": x})
            outcome.append("saved")
        except InvalidDefinition as exc:
            outcome.append(exc)

    # when
    with session_scope() as first:
        service.update_segment(first, segment_id=x, definition={"segment": y})
        thread = threading.Thread(target=second)
        thread.start()
        for _ in range(200):  # the second one must be waiting before the first commits
            if _waiting_for_a_lock(pg_url):
                break
            thread.join(0.02)
        assert thread.is_alive(), outcome
    thread.join(10)
    # then
    assert len(outcome) == 1 and isinstance(outcome[0], InvalidDefinition) and "cycle" in str(outcome[0])
    with session_scope() as s:
        assert s.get(Segment, y).definition == {"tag": "金卡"}
    get_settings.cache_clear()


def test_the_migration_records_the_references_of_segments_saved_before_it(tmp_path):
    """Given segments saved at revision 0002, one referencing another twice, when migrated to head, then the
    reference is a row and the database refuses to delete the referenced segment."""
    # given
    url = f"sqlite:///{tmp_path}/before.db"
    db.upgrade(url, "0002")
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO segments "
                          "(id, name, definition, depends_on, relative_dates, created_at, updated_at) "
                          "VALUES (1, 'a', '{\"tag\": \"VIP\"}', '[]', 0, '2026-01-01', '2026-01-01'), "
                          "(2, 'b', '{\"any\": [{\"segment\": 1}, {\"not\": {\"segment\": 1}}, {\"segment\": 9}]}', "
                          "'[]', 0, '2026-01-01', '2026-01-01')"))
    # when
    db.upgrade(url)
    # then
    with engine.connect() as conn:
        assert conn.execute(text("SELECT segment_id, referenced_id FROM segment_references")).all() == [(2, 1)]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("DELETE FROM segments WHERE id = 1"))
    engine.dispose()
