"""The console in a real headless Chromium: an admin at 1280 px, a store manager, and a staff member at 375 px
in the workbench, against Siyu served over HTTP with the sandbox answering for WeCom."""
from __future__ import annotations

import re

import pytest

from config.database import session_scope
from tests.conftest import ADMIN_TOKEN
from tests.console.browser import ARGS, CHROMIUM, DESKTOP, PHONE, require_chromium, screenshot, seed_demo

expect = None  # playwright's, imported with the browser (the module loads without playwright)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    global expect
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    expect = playwright_expect

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(db_url, settings, monkeypatch):
    """Siyu over real HTTP on a free port, its own URL as SIYU_PUBLIC_URL (the sandbox is mounted in it)."""
    from bot.clients import reset_clients
    from bot.sandbox.serve import free_port, serve_in_background
    from bot.sandbox.state import reset_state
    from config.settings import get_settings
    from siyu.app import create_app

    port = free_port()
    monkeypatch.setenv("SIYU_PUBLIC_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("SIYU_WECHAT_BACKOFF_BASE", "0.001")
    get_settings.cache_clear()
    reset_clients()
    sandbox = reset_state()
    server = serve_in_background(create_app(), port=port)
    data = seed_demo(sandbox)
    yield {"url": server.url.rstrip("/"), "sandbox": sandbox, **data}
    server.stop()
    reset_clients()


def _page(browser, viewport):
    context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(15000)
    outside = []
    page.on("pageerror", lambda e: print("pageerror:", e))
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:")) else None)
    return page, outside


def _sign_in(page, base: str, token: str = ADMIN_TOKEN, path: str = "/console/"):
    page.goto(base + path)
    assert "/console/login" in page.url
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_an_admin_signs_in_finds_a_member_tags_them_and_reads_the_overview(browser, served, tmp_path):
    page, outside = _page(browser, DESKTOP)
    base = served["url"]
    # when the admin signs in, then the overview shows its charts and their numbers
    _sign_in(page, base)
    assert page.url == base + "/console/"
    page.wait_for_selector("[data-chart=flow] svg")
    assert page.locator("#flow-table").count() == 1 and page.locator("#channel-table tbody tr").count() == 4
    # and the commerce sections: the campaign's funnel, group-buy in ¥, bookings in their seven states
    page.wait_for_selector("[data-chart^=funnel-] svg")
    page.wait_for_selector("[data-chart=groupbuy] svg")
    page.wait_for_selector("[data-chart=bookings] svg")
    assert page.locator("#funnel-table tbody tr").count() == 1 and page.locator("#booking-table tbody tr").count() == 7
    assert "¥438.90" in page.inner_text("#groupbuy-table")  # 11 orders paid of ¥39.90, one refunded
    screenshot(page, tmp_path, "overview")
    # when they search by name and open the member
    page.click("text=会员")
    page.fill("input[name=name]", "小红")
    page.click("#member-search button[type=submit]")
    page.wait_for_selector("#members tbody tr")
    assert page.locator("#members tbody tr").count() == 1
    page.click("#members tbody a >> nth=1")
    page.wait_for_selector("#timeline")
    # and add a tag through the htmx form, then the tag shows without a reload
    page.fill("#tag-form input[name=name]", "高意向")
    page.click("#tag-form button")
    page.wait_for_selector("#member-tags .tag:has-text('高意向')")
    screenshot(page, tmp_path, "member")
    assert outside == []


def test_a_marketer_builds_a_segment_sees_the_count_change_saves_and_refreshes_it(browser, served, tmp_path):
    page, outside = _page(browser, DESKTOP)
    base = served["url"]
    _sign_in(page, base, path="/console/segments/new")
    # the starter definition (tag VIP) counts the VIP members
    expect(page.locator("#preview-count")).to_have_text("3")
    # when the marketer turns the leaf into "store S002", then the live count follows
    page.select_option(".node[data-path='$.all[0]'] select >> nth=0", "store")
    page.select_option(".node[data-path='$.all[0]'] select >> nth=1", "S002")
    expect(page.locator("#preview-count")).to_have_text("4")
    # and an invalid node is named next to it (an empty tag)
    page.click("button.add")
    page.wait_for_selector(".node.invalid .node-error:not([hidden])")
    assert "$.all[1]" in page.inner_text(".node.invalid .node-error")
    page.click(".node[data-path='$.all[1]'] button.remove")
    expect(page.locator("#preview-count")).to_have_text("4")
    # saving without a name says so by the field, and saves nothing
    page.click("#save")
    page.wait_for_selector("#name-error:not(:empty)")
    page.fill("#segment-name", "徐汇店客户")
    page.click("#save")
    page.wait_for_url(re.compile(r".*/console/segments/\d+\?saved=1"))
    # a refresh shows its progress, then the size it found
    page.click("#refresh")
    page.wait_for_selector("#segment-size")
    assert page.inner_text("#segment-size") == "4"
    screenshot(page, tmp_path, "segment")
    assert outside == []


def test_an_admin_replays_an_inbox_failure(browser, served, tmp_path):
    from webhooks.inbox import inbox_scope
    from webhooks.models import InboxEvent

    with inbox_scope() as s:
        s.add(InboxEvent(source="wecom", content_key="test:failed:1", msg_type="event", event="change_external_contact",
                         change_type="add_external_contact", payload="<xml/>", data={}, status="failed", attempts=5,
                         error="WeChat refused: externalcontact/get: errcode 84061: not external contact"))
    page, _ = _page(browser, DESKTOP)
    _sign_in(page, served["url"], path="/console/ops/inbox")
    row = page.locator("#ops-inbox tbody tr").first
    assert "failed" in row.inner_text()
    row.locator("button:has-text('重放')").click()
    page.wait_for_selector("#ops-inbox .done:has-text('已重放')")
    screenshot(page, tmp_path, "inbox")


def test_after_sign_out_a_page_goes_to_sign_in(browser, served):
    page, _ = _page(browser, DESKTOP)
    _sign_in(page, served["url"])
    page.click(".signout button")
    page.wait_for_url(re.compile(r".*/console/login$"))
    page.goto(served["url"] + "/console/members")
    assert "/console/login?next=/console/members" in page.url


def test_a_store_manager_sees_none_of_another_store_s_members(browser, served, tmp_path):
    page, _ = _page(browser, DESKTOP)
    _sign_in(page, served["url"], served["manager2"], path="/console/members")
    names = page.inner_text("#members")
    assert "蒋琳" in names and "王小明" not in names  # S002's customers only
    response = page.goto(served["url"] + f"/console/members/{served['ids'][0]}")
    assert response.status == 404 and "找不到" in page.inner_text("main")
    screenshot(page, tmp_path, "manager-404")


def test_the_workbench_signs_staff_in_through_wecom_and_lists_their_customers(browser, served, tmp_path):
    page, outside = _page(browser, PHONE)
    base = served["url"]
    # when a staff member opens the workbench, then WeCom's sign-in (the sandbox's page) brings them back signed in
    page.goto(base + "/console/workbench")
    assert "/sandbox/open/connect/oauth2/authorize" in page.url and "snsapi_base" in page.url
    page.click("text=张三 (zhangsan)")
    page.wait_for_url(base + "/console/workbench")
    # and they see their own customers only, on a phone-wide page without a token in any URL
    items = page.inner_text("#customers")
    assert "赵小红" in items and "王小明" not in items
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, tmp_path, "workbench")
    # and after signing out they are out
    page.click(".signout button")
    page.wait_for_url(re.compile(r".*/workbench/signed-out$"))
    with session_scope() as s:
        from sqlalchemy import select

        from console.models import ConsoleSession
        assert all(r.revoked_at for r in s.scalars(select(ConsoleSession)))
    assert outside == []
