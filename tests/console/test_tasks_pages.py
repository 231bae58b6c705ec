"""The 任务 page and the workbench's tasks, scoped as the API: a store manager sees their store's tasks, staff
their own; 完成 needs the CSRF token and another staff member's task is 404."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from campaigns.models import Campaign, CampaignRun
from campaigns.tasks.models import StaffTask
from config.database import session_scope
from config.types import utcnow
from membership.models import Staff
from tests.console.conftest import sign_in


def _tasks(shop) -> dict[str, int]:
    """A campaign run with an open task for zhangsan (S1) and an overdue one for lisi (S2)."""
    now = utcnow()
    with session_scope() as s:
        campaign = Campaign(name="回访", spec={}, schedule_kind="manual", action_type="wecom_staff_task",
                            status="running")
        s.add(campaign)
        s.flush()
        run = CampaignRun(campaign_id=campaign.id, key="manual", due_at=now)
        s.add(run)
        s.flush()
        ids = {}
        for userid, due in (("zhangsan", now + timedelta(hours=5)), ("lisi", now - timedelta(hours=1))):
            staff = s.scalar(select(Staff).where(Staff.userid == userid))
            task = StaffTask(campaign_id=campaign.id, run_id=run.id, staff_id=staff.id, store_id=staff.store_id,
                             title=f"回访 {userid}", task_id=f"t-{userid}", due_at=due, created_at=now)
            s.add(task)
            s.flush()
            ids[userid] = task.id
    return ids


def test_a_store_manager_sees_their_store_s_tasks_and_staff_may_not_open_the_page(client, shop):
    _tasks(shop)
    sign_in(client, shop["manager"])
    page = client.get("/console/tasks")
    assert page.status_code == 200
    assert "回访 zhangsan" in page.text and "回访 lisi" not in page.text
    assert "lisi" not in client.get("/console/tasks?status=overdue").text.split('id="tasks"')[1]
    client.cookies.clear()
    sign_in(client, shop["staff"])
    assert client.get("/console/tasks").status_code == 403


def test_an_admin_filters_by_status_and_a_bad_filter_is_said_by_its_field(client, shop):
    _tasks(shop)
    sign_in(client)
    table = client.get("/console/tasks?status=overdue").text.split('id="tasks"')[1]
    assert "回访 lisi" in table and "回访 zhangsan" not in table and "已逾期" in table
    bad = client.get("/console/tasks?status=late")
    assert bad.status_code == 200 and "status: one of open, done, overdue" in bad.text
    assert "staff &#39;nobody&#39; not found" in client.get("/console/tasks?staff=nobody").text


def test_the_workbench_lists_one_s_own_tasks_and_done_needs_the_csrf_token(client, shop):
    ids = _tasks(shop)
    sign_in(client, shop["staff"])
    page = client.get("/console/workbench")
    assert "回访 zhangsan" in page.text and "回访 lisi" not in page.text
    url = f"/console/workbench/tasks/{ids['zhangsan']}/done"
    assert client.post(url, headers={"HX-Request": "true"}).status_code == 403  # no CSRF token
    csrf = {"X-CSRF-Token": page.text.split('data-csrf="')[1].split('"')[0], "HX-Request": "true"}
    assert client.post(f"/console/workbench/tasks/{ids['lisi']}/done", headers=csrf).status_code == 404
    done = client.post(url, headers=csrf)
    assert done.status_code == 200 and "已完成" in done.text
    with session_scope() as s:
        assert [t.status for t in s.scalars(select(StaffTask).order_by(StaffTask.id))] == ["done", "open"]
