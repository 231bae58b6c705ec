"""GET /api/v1/tasks and POST /api/v1/tasks/{id}/done, scoped like the API: admin and marketer every task, a
store manager their store's, a staff member their own (another's task is 404); and completion is exactly once
under concurrency on PostgreSQL."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from campaigns.tasks import action, service
from campaigns.tasks.models import StaffTask
from config.database import session_scope
from membership.models import TimelineEvent
from siyu.app import create_app
from tests.campaigns.conftest import build_world
from tests.campaigns.test_api_and_races import ON_POSTGRESQL, _together
from tests.campaigns.test_staff_tasks import ACTION, ADMIN, launch


@pytest.fixture
def scoped(sandbox, manual_clock):
    """Two stores with one staff member each, a task each, and a token per role."""
    world = build_world(sandbox, members=20, stores=2, staff=2)
    launch(world.segment_id, times=1)
    with TestClient(create_app()) as client:
        def token(role: str, **scope) -> dict:
            r = client.post("/api/v1/tokens", headers=ADMIN, json={"name": role, "role": role, **scope})
            assert r.status_code == 201, r.text
            return {"Authorization": f"Bearer {r.json()['token']}"}

        tokens = {"admin": ADMIN, "marketer": token("marketer"), "manager": token("store_manager", store="S001"),
                  "staff": token("staff", staff="u000"), "other_staff": token("staff", staff="u001")}
        with session_scope() as s:
            ids = dict(s.execute(select(StaffTask.staff_id, StaffTask.id)).all())
        yield client, tokens, {"u000": ids[1], "u001": ids[2]}


def staff_of(client, headers, query: str = "") -> list[str]:
    r = client.get(f"/api/v1/tasks{query}", headers=headers)
    assert r.status_code == 200, r.text
    return sorted(i["staff"] for i in r.json()["items"])


def test_each_role_lists_only_the_tasks_it_may_see(scoped):
    client, tokens, _ = scoped
    assert staff_of(client, tokens["admin"]) == ["u000", "u001"]
    assert staff_of(client, tokens["marketer"]) == ["u000", "u001"]
    assert staff_of(client, tokens["manager"]) == ["u000"]  # S001's staff member only
    assert staff_of(client, tokens["staff"]) == ["u000"]
    assert staff_of(client, tokens["other_staff"]) == ["u001"]
    # asking for another staff member's tasks shows none of them
    assert staff_of(client, tokens["manager"], "?staff=u001") == []
    assert staff_of(client, tokens["staff"], "?staff=u001") == []
    assert staff_of(client, tokens["admin"], "?staff=u001") == ["u001"]
    # the items carry the customers to contact
    item = client.get("/api/v1/tasks", headers=tokens["staff"]).json()["items"][0]
    assert item["status"] == "open" and item["customer_count"] == 10 == len(item["customers"])


def test_marking_another_scopes_task_done_is_404_and_ones_own_is_done(scoped):
    client, tokens, ids = scoped
    for who in ("manager", "staff"):
        assert client.post(f"/api/v1/tasks/{ids['u001']}/done", headers=tokens[who]).status_code == 404
    assert client.post("/api/v1/tasks/999999/done", headers=tokens["admin"]).status_code == 404
    r = client.post(f"/api/v1/tasks/{ids['u000']}/done", headers=tokens["staff"])
    assert r.status_code == 200 and r.json()["status"] == "done" and r.json()["done_via"] == "api"
    assert staff_of(client, tokens["admin"], "?status=done") == ["u000"]
    assert staff_of(client, tokens["admin"], "?status=open") == ["u001"]


def test_bad_filters_and_cursors_are_4xx_and_pages_follow_the_cursor(scoped):
    client, tokens, ids = scoped
    assert client.get("/api/v1/tasks").status_code == 401
    assert client.get("/api/v1/tasks?status=late", headers=tokens["admin"]).status_code == 422
    assert client.get("/api/v1/tasks?staff=nobody", headers=tokens["admin"]).status_code == 404
    assert client.get("/api/v1/tasks?cursor=bm9wZQ", headers=tokens["admin"]).status_code == 422
    first = client.get("/api/v1/tasks?limit=1", headers=tokens["admin"]).json()
    second = client.get(f"/api/v1/tasks?limit=1&cursor={first['next_cursor']}", headers=tokens["admin"]).json()
    assert [i["id"] for i in first["items"] + second["items"]] == sorted(ids.values())
    assert second["next_cursor"] is None


@ON_POSTGRESQL
def test_concurrent_completions_and_task_writes_happen_once_on_postgresql(sandbox, manual_clock):
    world = build_world(sandbox, members=20, stores=2, staff=2)
    launch(world.segment_id, times=1)
    with session_scope() as s:
        task = s.scalar(select(StaffTask).where(StaffTask.staff_id == 1))
        task_pk, run_id = task.id, task.run_id
        send_id = s.scalar(select(action.CampaignSend.id).where(action.CampaignSend.run_id == run_id,
                                                                action.CampaignSend.staff_id == 1))

    written, won = [], []
    with session_scope() as s:  # as if the task had never been written
        s.execute(delete(StaffTask).where(StaffTask.id == task_pk))

    # eight workers writing the same run's task for the same staff member at once make one row
    def write():
        with session_scope() as s:
            written.append(action.ensure_task(s, send_id, {"title": "x", "due_in_hours": 1}).id)
    _together(write, 8)
    with session_scope() as s:
        rows = list(s.scalars(select(StaffTask.id).where(StaffTask.run_id == run_id, StaffTask.staff_id == 1)))
    assert len(rows) == 1 and written == rows * 8
    task_pk = rows[0]

    # eight completions at once (clicks, taps, API calls): one wins, the timelines are written once
    def complete():
        with session_scope() as s:
            won.append(service.complete(s, task_pk, via="api"))
    _together(complete, 8)
    assert sorted(won) == [False] * 7 + [True]
    with session_scope() as s:
        completed = s.scalar(select(func.count()).select_from(TimelineEvent)
                             .where(TimelineEvent.type == "task.completed"))
    assert completed == 10


@pytest.mark.parametrize("change,field", [
    ({"title": "长" * 27}, "title"), ({"title": "   "}, "title"), ({"due_in_hours": 0}, "due_in_hours"),
    ({"due_in_hours": 721}, "due_in_hours"), ({"description": "长" * 113}, "description"), ({"text": "x"}, "text"),
])
def test_an_invalid_task_action_is_422_pointing_at_the_field(settings, change, field):
    with TestClient(create_app()) as client:
        answer = client.post("/api/v1/campaigns", headers=ADMIN, json={
            "name": "回访", "audience": {"segment_id": 1}, "action": {**ACTION, **change}})
    assert answer.status_code == 422
    assert any(field in [str(p) for p in issue["loc"]] for issue in answer.json()["detail"]), answer.json()
