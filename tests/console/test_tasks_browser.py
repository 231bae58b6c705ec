"""Staff tasks in a real headless Chromium: a staff member at 375 px marks a task done on the workbench with
one tap, the API then lists it done and its WeCom card reads 已完成; an admin reads the 任务 page."""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import insert, select

from campaigns import clock
from campaigns.tasks.models import StaffTask
from config.database import session_scope
from config.queue import in_process_runner
from membership.models import Staff
from segments.models import Segment, SegmentMembership
from tests.campaigns.conftest import MORNING
from tests.campaigns.test_staff_tasks import ACTION, launch
from tests.conftest import ADMIN_TOKEN
from tests.console.browser import DESKTOP, PHONE, screenshot
from tests.console.test_browser import _page, _sign_in, browser, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def tasks_served(served):  # noqa: F811
    """The demo chain with a staff-task campaign over every member, launched on a weekday morning."""
    with clock.using(clock.Manual(MORNING)):
        with session_scope() as s:
            segment = Segment(name="全部", definition={"channel": "wecom"}, depends_on=[])
            s.add(segment)
            s.flush()
            s.execute(insert(SegmentMembership), [{"segment_id": segment.id, "member_id": m} for m in served["ids"]])
            segment_id = segment.id
        launch(segment_id, times=1)
        yield served


def test_a_staff_member_marks_a_task_done_on_the_workbench_and_the_api_shows_it_done(browser, tasks_served,  # noqa: F811
                                                                                       tmp_path):
    base, sandbox = tasks_served["url"], tasks_served["sandbox"]
    with session_scope() as s:
        zhang = s.scalar(select(Staff.id).where(Staff.userid == "zhangsan"))
        task_pk, task_id = s.execute(select(StaffTask.id, StaffTask.task_id)
                                     .where(StaffTask.staff_id == zhang)).one()
    page, outside = _page(browser, PHONE)
    # given zhangsan signed in to the workbench through WeCom
    page.goto(base + "/console/workbench")
    page.click("text=张三 (zhangsan)")
    page.wait_for_url(base + "/console/workbench")
    # then their task is there with the customers to contact
    task = page.locator(f"#task-{task_pk}")
    assert ACTION["title"] in task.inner_text() and "赵小红" in task.inner_text()
    assert "王小明" not in task.inner_text()  # lisi's customer
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, tmp_path, "workbench-task")
    # when they tap 完成
    task.locator("button.done").click()
    page.wait_for_selector(f"#task-{task_pk} .s-done")
    assert "已完成" in page.locator(f"#task-{task_pk}").inner_text()
    assert page.locator(f"#task-{task_pk} button.done").count() == 0
    # then the API lists the task done, done from the workbench
    answer = requests.get(f"{base}/api/v1/tasks", params={"staff": "zhangsan", "status": "done"},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10).json()
    assert [(i["id"], i["status"], i["done_via"]) for i in answer["items"]] == [(task_pk, "done", "workbench")]
    # and its card in WeCom reads 已完成 (updated with the send's response_code)
    assert in_process_runner().drain(60)
    assert sandbox.task_cards[task_id]["replaced"] == "已完成"
    assert outside == []


def test_an_admin_reads_tasks_per_staff_member_and_store(browser, tasks_served, tmp_path):  # noqa: F811
    base = tasks_served["url"]
    page, outside = _page(browser, DESKTOP)
    _sign_in(page, base, path="/console/tasks")
    page.goto(base + "/console/tasks")
    rows = page.inner_text("#task-counts")
    assert "张三" in rows and "李四" in rows and "王五" in rows
    page.select_option("select[name=status]", "open")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("#tasks tbody tr").count() == 3
    screenshot(page, tmp_path, "tasks")
    assert outside == []
