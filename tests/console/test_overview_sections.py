"""概览's commerce sections over HTTP: campaign funnels (the API's stats), group-buy revenue and refunds in ¥,
bookings by state; a store manager's figures are their store's; the statements stay the same for 3 rows or 30."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from campaigns.bookings import catalog
from campaigns.bookings import service as bookings
from campaigns.groupbuy import groups, offers, payments, refunds
from campaigns.groupbuy.models import Group, Offer, Order, Refund
from campaigns.groupbuy.schemas import OfferIn
from campaigns.models import Campaign, CampaignRun, CampaignStep
from config.database import engine_for, session_scope
from config.settings import get_settings
from config.types import utcnow
from membership import service as members
from membership.identity import IdentityIn, bind
from membership.models import Staff
from tests.console.conftest import sign_in
from tests.console.test_pages import _count_statements
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _cells(page: str, table: str) -> list[list[str]]:
    """The rows of a table of the page (by id), each a list of its cells' text."""
    body = re.search(rf'id="{table}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _table(page: str, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in _cells(page, table)}


# -- 拼团 ---------------------------------------------------------------------------------------------------
def _member(s, n: int, store_code: str) -> int:
    store = members.get_store_by_code(s, store_code)
    return bind(s, [IdentityIn("phone", f"1360000{n:04d}", verified=True)], name=f"团员{n}",
                store_id=store.id).member.id


def _group(s, offer, leader: int, size: int, buyers: list[int], *, expires_at=None) -> Group:
    """A group whose buyers each hold a pending seat (and stock), then pay through the payment service."""
    s.execute(Offer.__table__.update().where(Offer.id == offer.id)
              .values(stock_taken=Offer.stock_taken + len(buyers)))
    group = Group(offer_id=offer.id, leader_member_id=leader, size=size, seats=len(buyers), paid=0, status="open",
                  expires_at=expires_at or utcnow() + timedelta(hours=1))
    s.add(group)
    s.flush()
    for member_id in buyers:
        order = Order(out_trade_no=f"GB{group.id:05d}{member_id:08d}", offer_id=offer.id, group_id=group.id,
                      member_id=member_id, openid=f"o{member_id}", amount_fen=offer.price_fen, status="pending",
                      hold_until=utcnow() + timedelta(minutes=15))
        s.add(order)
        s.flush()
        assert payments.apply_payment(s, out_trade_no=order.out_trade_no, transaction_id=f"T{order.id}") == "paid"
    return group


@pytest.fixture
def deals(shop):
    """S1: a group of a and b that succeeded, a's group that failed (its payment refunded); S2: c's open group."""
    a, b, c = shop["ids"]["a"], shop["ids"]["b"], shop["ids"]["c"]
    with session_scope() as s:
        start = utcnow() - timedelta(days=1)
        offer = offers.create_offer(s, body=OfferIn(name="双人团", price_fen=1990, original_price_fen=5000,
                                                    group_size=2, time_limit_minutes=60, stock=100, starts_at=start,
                                                    ends_at=start + timedelta(days=30)))
        _group(s, offer, a, 2, [a, b])
        failed = _group(s, offer, a, 2, [a], expires_at=utcnow() - timedelta(minutes=1))
        assert groups.fail(s, group_id=failed.id)
        refund = s.scalar(select(Refund).join(Order, Order.id == Refund.order_id).where(Order.group_id == failed.id))
        assert refunds.settle(s, refund_id=refund.id, refund_status="SUCCESS") == "succeeded"
        _group(s, offer, c, 2, [c])
    return {"offer": offer.id}


def test_group_buy_shows_paid_and_refunded_yuan_and_closed_groups_and_a_manager_only_their_store(client, shop, deals):
    sign_in(client)
    page = client.get("/console/", params={"days": 7}).text
    assert _table(page, "groupbuy-table") == {"支付金额": "¥79.60", "支付订单": "4", "退款金额": "¥19.90",
                                              "退款笔数": "1", "已成团": "1", "未成团": "1"}
    assert 'data-chart="groupbuy"' in page
    today = utcnow().astimezone(get_settings().tz).date().isoformat()
    days = _cells(page, "groupbuy-days")
    assert len(days) == 7 and days[0] == [today, "¥79.60", "4", "¥19.90", "1", "1", "1"]
    assert all(row[1:] == ["¥0.00", "0", "¥0.00", "0", "0", "0"] for row in days[1:])
    # a marketer's store filter counts that store's members' orders
    s2 = client.get("/console/", params={"store": "S2"}).text
    assert _table(s2, "groupbuy-table") == {"支付金额": "¥19.90", "支付订单": "1", "退款金额": "¥0.00",
                                            "退款笔数": "0", "已成团": "0", "未成团": "0"}
    # the S1 manager sees S1's figures only, whatever store they ask for
    client.cookies.clear()
    sign_in(client, shop["manager"])
    mine = client.get("/console/", params={"store": "S2"}).text
    assert _table(mine, "groupbuy-table") == {"支付金额": "¥59.70", "支付订单": "3", "退款金额": "¥19.90",
                                              "退款笔数": "1", "已成团": "1", "未成团": "1"}


# -- 预约 ---------------------------------------------------------------------------------------------------
@pytest.fixture
def booked(shop):
    """S1 and S2 take bookings tomorrow (30 seats an hour); S1: four bookings in four states, S2: one."""
    tomorrow = (utcnow().astimezone(get_settings().tz) + timedelta(days=1)).date()
    with session_scope() as s:
        for code in ("S1", "S2"):
            catalog.set_schedule(s, store=members.get_store_by_code(s, code), capacity=30, staff_capacity=1,
                                 hours=[catalog.Hours(d, 9 * 60, 21 * 60) for d in range(1, 8)])
        catalog.create_service(s, code="eye", name="验光", duration_minutes=60, price_fen=0, stores=["S1", "S2"])
    at = lambda h: datetime(tomorrow.year, tomorrow.month, tomorrow.day, h, tzinfo=get_settings().tz)  # noqa: E731
    with session_scope() as s:
        ids = {}
        for key, member, store, hour in (("a10", "a", "S1", 10), ("b10", "b", "S1", 10), ("a14", "a", "S1", 14),
                                         ("b14", "b", "S1", 14), ("c10", "c", "S2", 10)):
            ids[key] = bookings.book(s, member_id=shop["ids"][member], store=store, service="eye",
                                     start=at(hour))[0].id
        bookings.move(s, booking_id=ids["a10"], to="checked_in")
        bookings.move(s, booking_id=ids["b10"], to="cancelled")
        for to in ("checked_in", "in_service", "ready"):
            bookings.move(s, booking_id=ids["a14"], to=to)
    return {"day": tomorrow, "at": at, "ids": ids}


def test_bookings_are_counted_by_state_with_chinese_labels_and_a_manager_sees_their_store(client, shop, booked):
    sign_in(client)
    page = client.get("/console/", params={"days": 7}).text
    assert _table(page, "booking-table") == {"已预约": "2", "已到店": "1", "服务中": "0", "待取件": "1",
                                             "已完成": "0", "已取消": "1", "未到店": "0"}
    assert "本期新增 5 个" in page and 'data-chart="bookings"' in page
    assert _table(client.get("/console/", params={"store": "S2"}).text, "booking-table")["已预约"] == "1"
    client.cookies.clear()
    sign_in(client, shop["manager"])
    mine = client.get("/console/", params={"store": "S2"}).text
    assert _table(mine, "booking-table") == {"已预约": "1", "已到店": "1", "服务中": "0", "待取件": "1",
                                             "已完成": "0", "已取消": "1", "未到店": "0"}


# -- 活动漏斗 -------------------------------------------------------------------------------------------------
def _campaign(s, name: str, members_by_staff: dict[str, list[int]], *, launched_days_ago: float = 1,
              status: str = "running") -> int:
    """A launched campaign's ledger as the fan-out writes it: one step per member, most sent and confirmed, some
    delivered, one skipped."""
    now = utcnow()
    campaign = Campaign(name=name, spec={"action": {"type": "wecom_mass_message"}}, schedule_kind="manual",
                        action_type="wecom_mass_message", status=status,
                        launched_at=now - timedelta(days=launched_days_ago))
    s.add(campaign)
    s.flush()
    run = CampaignRun(campaign_id=campaign.id, key="manual", due_at=now)
    s.add(run)
    s.flush()
    for userid, ids in members_by_staff.items():
        staff = s.scalar(select(Staff).where(Staff.userid == userid))
        for i, member_id in enumerate(ids):
            skipped = i == len(ids) - 1 and len(ids) > 1
            s.add(CampaignStep(key=f"run:{run.id}:member:{member_id}:send", run_id=run.id, campaign_id=campaign.id,
                               member_id=member_id, step="send", staff_id=staff.id, store_id=staff.store_id,
                               status="skipped" if skipped else "confirmed",
                               reason="frequency_cap" if skipped else None,
                               result=None if skipped else ("delivered" if i % 2 == 0 else "not_confirmed"),
                               submitted_at=None if skipped else now, confirmed_at=None if skipped else now))
    s.flush()
    return campaign.id


def test_campaign_funnels_are_the_api_s_stats_of_recent_campaigns_for_marketers_only(client, shop):
    a, b, c = shop["ids"]["a"], shop["ids"]["b"], shop["ids"]["c"]
    with session_scope() as s:
        first = _campaign(s, "三月回访", {"zhangsan": [a, b], "lisi": [c]})
        old = _campaign(s, "去年活动", {"zhangsan": [a]}, launched_days_ago=400, status="completed")
        s.execute(Campaign.__table__.update().where(Campaign.id == old)
                  .values(updated_at=utcnow() - timedelta(days=300)))
        draft = Campaign(name="草稿活动", spec={}, schedule_kind="manual", action_type="wecom_mass_message")
        s.add(draft)
    sign_in(client, shop["marketer"])
    page = client.get("/console/", params={"days": 30}).text
    rows = _cells(page, "funnel-table")
    api = client.get(f"/api/v1/campaigns/{first}", headers=ADMIN).json()["stats"]
    funnel = [str(api[k]) for k in ("targeted", "sent", "confirmed", "delivered", "converted")]
    assert rows == [["三月回访", *funnel]] and funnel == ["3", "2", "2", "2", "0"]
    assert f'data-chart="funnel-{first}"' in page and "去年活动" not in page and "草稿活动" not in page
    # the store filter shows that store's part of each funnel (the API's per_store), the staff filter theirs
    s1 = _cells(client.get("/console/", params={"store": "S1"}).text, "funnel-table")
    assert s1 == [["三月回访", *[str(api["per_store"]["S1"][k]) for k in
                                ("targeted", "sent", "confirmed", "delivered", "converted")]]]
    assert s1[0][1:] == ["2", "1", "1", "1", "0"]
    assert _cells(client.get("/console/", params={"staff": "lisi"}).text, "funnel-table")[0][1:] == \
        ["1", "1", "1", "1", "0"]
    # the most recent five only, newest first
    with session_scope() as s:
        for n in range(6):
            _campaign(s, f"活动{n}", {"zhangsan": [a]}, launched_days_ago=0.5 - n / 100)
    names = [r[0] for r in _cells(client.get("/console/").text, "funnel-table")]
    assert names == ["活动5", "活动4", "活动3", "活动2", "活动1"]
    # a store manager sees no funnels (campaigns are for marketers and admins, as in the API)
    client.cookies.clear()
    sign_in(client, shop["manager"])
    assert 'id="funnel-table"' not in client.get("/console/").text


# -- no N+1 -------------------------------------------------------------------------------------------------
def test_the_sections_cost_the_same_statements_for_3_rows_as_for_30(client, shop, deals, booked, settings):
    with session_scope() as s:
        campaign = _campaign(s, "回访", {"zhangsan": [shop["ids"]["a"], shop["ids"]["b"]],
                                         "lisi": [shop["ids"]["c"]]})
    engine = engine_for(settings.database_url)
    sign_in(client)
    few_admin = _count_statements(engine, lambda: client.get("/console/"))
    client.cookies.clear()
    sign_in(client, shop["manager"])
    few_manager = _count_statements(engine, lambda: client.get("/console/"))
    # when 27 more members of S1 pay in one group, book, and are targeted by the campaign
    with session_scope() as s:
        extra = [_member(s, n, "S1") for n in range(27)]
        offer = offers.get_offer(s, deals["offer"])
        _group(s, offer, extra[0], 30, extra)
        for member_id in extra:
            bookings.book(s, member_id=member_id, store="S1", service="eye", start=booked["at"](11))
        zhang = s.scalar(select(Staff).where(Staff.userid == "zhangsan"))
        run = s.scalar(select(CampaignRun.id).where(CampaignRun.campaign_id == campaign))
        for member_id in extra:
            s.add(CampaignStep(key=f"run:{run}:member:{member_id}:send", run_id=run, campaign_id=campaign,
                               member_id=member_id, step="send", staff_id=zhang.id, store_id=zhang.store_id,
                               status="confirmed", result="delivered", submitted_at=utcnow(),
                               confirmed_at=utcnow()))
    many_manager = _count_statements(engine, lambda: client.get("/console/"))
    mine = client.get("/console/").text
    assert _table(mine, "groupbuy-table")["支付订单"] == "30" and _table(mine, "booking-table")["已预约"] == "28"
    client.cookies.clear()
    sign_in(client)
    many_admin = _count_statements(engine, lambda: client.get("/console/"))
    page = client.get("/console/").text
    assert _cells(page, "funnel-table")[0][1] == "30"
    # then the page takes exactly as many statements for 30 rows of each as for 3
    assert (many_admin, many_manager) == (few_admin, few_manager)
