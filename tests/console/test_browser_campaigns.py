"""活动 and 预约 in a real headless Chromium at 1280 px: a marketer creates and launches a mass-message campaign from
the form against the sandbox and reads its funnel and exports its ledger; a store manager moves a booking along
in the calendar."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from campaigns import mass_message
from campaigns.bookings import catalog
from campaigns.bookings import service as bookings
from campaigns.bookings.models import Booking
from campaigns.models import CampaignSend, CampaignStep
from config.database import session_scope
from config.settings import get_settings
from config.types import utcnow
from membership import service, tokens
from membership.models import Role
from membership.timeline import record_event
from segments.models import Segment, SegmentMembership
from tests.console import test_browser
from tests.console.browser import DESKTOP, screenshot
from tests.console.test_browser import _page, _sign_in

pytestmark = pytest.mark.timeout(240)
browser, served = test_browser.browser, test_browser.served  # the console browser tests' fixtures


@pytest.fixture
def anytime(settings, monkeypatch):
    """No default quiet hours, so the campaign sends whatever time of day the suite runs (requested before served)."""
    monkeypatch.setenv("SIYU_QUIET_HOURS", "")
    get_settings.cache_clear()


def _marketer_and_segment(data) -> tuple[str, int]:
    with session_scope() as s:
        _, marketer = tokens.create_token(s, name="运营小李", role=Role.marketer)
        segment = Segment(name="静安店客户", definition={"store": "S001"}, depends_on=[])
        s.add(segment)
        s.flush()
        s.add_all(SegmentMembership(segment_id=segment.id, member_id=m) for m in data["ids"][:8])  # S001's
        return marketer, segment.id


def test_a_marketer_creates_and_launches_a_mass_message_from_the_form_and_sees_its_funnel(browser, anytime, served,
                                                                                         tmp_path):
    marketer, segment_id = _marketer_and_segment(served)
    page, outside = _page(browser, DESKTOP)
    base = served["url"]
    _sign_in(page, base, marketer, path="/console/campaigns/new")
    # saving without text says so next to the field, and saves nothing
    page.fill("#name", "静安店春季回访")
    page.select_option("#segment_id", str(segment_id))
    page.click("#save-campaign")
    page.wait_for_selector("#text-error:not(:empty)")
    assert "needs text or attachments" in page.inner_text("#text-error")
    screenshot(page, tmp_path, "campaign-form")
    # when the marketer writes the message and saves, then the draft's page opens
    page.fill("#text", "春季焕新，到店验光送镜布")
    page.select_option("#goal_event", "booking.created")  # converted: booked within 7 days of the message
    page.click("#save-campaign")
    page.wait_for_url(re.compile(r".*/console/campaigns/\d+$"))
    test_browser.expect(page.locator("#campaign-status")).to_have_text("草稿")
    # and launching it sends through the sandbox: the page follows the run until the ledger is sent
    page.click("#move-launch")
    test_browser.expect(page.locator("#campaign-status")).to_have_text(re.compile("进行中|已完成"))
    page.wait_for_selector("#campaign-live:not([hx-trigger])", timeout=60000)
    sandbox = served["sandbox"]
    assert sorted(u for t in sandbox.msg_tasks.values() for u in t["senders"]) == ["lisi", "zhangsan"]
    # when the staff confirm in WeCom and Siyu polls the results
    for msgid, task in list(sandbox.msg_tasks.items()):
        for userid in task["senders"]:
            sandbox.confirm_msg_task(msgid, userid)
    with session_scope() as s:
        s.execute(update(CampaignSend).values(next_poll_at=utcnow() - timedelta(minutes=1)))
        send_ids = list(s.scalars(select(CampaignSend.id)))
    for send_id in send_ids:
        mass_message.poll(send_id)
    with session_scope() as s:  # and three of them book afterwards
        for member_id in served["ids"][:3]:
            record_event(s, member_id, "booking.created", {"service": "eye"}, at=utcnow() + timedelta(minutes=1))
    # then the funnel shows targeted, sent, confirmed and delivered, with the numbers under it
    page.reload()
    page.wait_for_selector("[data-chart=funnel] svg")
    drawn = page.eval_on_selector_all("[data-chart=funnel] svg text", "els => els.map((e) => e.textContent)")
    assert {"目标", "已提交", "已确认", "已送达", "已转化"} <= set(drawn), drawn  # each step drawn with its label
    total = page.locator("#results-total tbody td").all_inner_texts()
    campaign_id = int(page.url.rsplit("/", 1)[1])
    with session_scope() as s:  # (the demo data has a campaign of its own)
        steps = list(s.scalars(select(CampaignStep).where(CampaignStep.campaign_id == campaign_id)))
    delivered = sum(1 for st in steps if st.result == "delivered")
    assert total[:6] == ["全部", "8", "8", "8", str(delivered), "3"] and delivered >= 6
    assert page.locator("#results-per_staff tbody tr").count() == 2
    screenshot(page, tmp_path, "campaign")
    # and the ledger exports with its progress, every member once
    with page.expect_download() as download:
        page.click("#export-ledger")
    test_browser.expect(page.locator("#export-progress span")).to_have_text("完成：8 行")
    text = open(download.value.path(), encoding="utf-8-sig").read().splitlines()
    assert text[0].startswith("member_id,member,store,staff,status") and len(text) == 9
    assert [u for u in outside if not u.startswith("blob:http://127.0.0.1")] == []


def test_a_store_manager_moves_a_booking_along_in_the_calendar(browser, served, tmp_path):
    # the day after the demo data's bookings (which are tomorrow), with a service of its own
    later = (utcnow().astimezone(get_settings().tz) + timedelta(days=2)).date()
    with session_scope() as s:
        store = service.get_store_by_code(s, "S002")
        catalog.set_schedule(s, store=store, hours=[catalog.Hours(d, 9 * 60, 21 * 60) for d in range(1, 8)],
                             capacity=2)
        catalog.create_service(s, code="watch", name="修表", duration_minutes=60, price_fen=0, stores=["S002"])
    ids = []
    with session_scope() as s:
        for n, hour in ((8, 10), (9, 10), (10, 15)):
            start = datetime(later.year, later.month, later.day, hour, tzinfo=get_settings().tz)
            ids.append(bookings.book(s, member_id=served["ids"][n], store="S002", service="watch", start=start)[0].id)
    page, outside = _page(browser, DESKTOP)
    _sign_in(page, served["url"], served["manager2"], path=f"/console/bookings?date={later}")
    assert page.locator("#bookings tbody tr[id^=booking-]").count() == 3
    assert "2 / 2" in page.inner_text("#capacity")
    # when the manager checks the first customer in, starts the service and completes it
    row = f"#booking-{ids[0]}"
    for button, shown in (("checked_in", "已到店"), ("in_service", "服务中"), ("completed", "已完成")):
        page.click(f"{row} button[data-to={button}]")
        test_browser.expect(page.locator(f"{row} .state")).to_have_text(shown)
    assert page.locator(f"{row} button").count() == 0  # completed: no move is left
    # and the week view shows the day's bookings with their states; a card there moves too
    page.goto(served["url"] + f"/console/bookings?date={later}&view=week")
    day = page.locator(f".day[data-date='{later}']")
    assert day.locator(".booking").count() == 3
    page.once("dialog", lambda d: d.accept())
    day.locator(f"#booking-{ids[2]} button[data-to=cancelled]").click()
    test_browser.expect(page.locator(f"#booking-{ids[2]} .state")).to_have_text("已取消")
    screenshot(page, tmp_path, "bookings")
    with session_scope() as s:
        assert [s.get(Booking, i).status for i in ids] == ["completed", "booked", "cancelled"]
    assert outside == []
