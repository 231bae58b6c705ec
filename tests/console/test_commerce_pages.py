"""拼团 and 预约 pages over HTTP: offers from a form (¥ in, fen stored, the API's 422 by the field), groups, orders
and refunds scoped to a store manager's members, the booking calendar and its moves (the API's 409), no N+1."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from campaigns.bookings import catalog
from campaigns.bookings import service as bookings
from campaigns.bookings.capacity import SlotFull
from campaigns.bookings.models import Booking, CapacityUnit
from campaigns.groupbuy import offers
from campaigns.groupbuy.models import Group, Offer, Order, Refund
from campaigns.groupbuy.schemas import OfferIn
from config.database import engine_for, session_scope
from config.settings import get_settings
from config.types import utcnow
from console import bookings as booking_pages
from membership import service as members
from membership.identity import IdentityIn, bind
from tests.console.conftest import csrf_of, sign_in
from tests.console.test_pages import _count_statements
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SHANGHAI = timezone(timedelta(hours=8))


# -- 拼团 -------------------------------------------------------------------------------------------------
def _offer_form(**fields) -> dict:
    return {"name": "三人团验光", "price": "39.90", "original_price": "99", "group_size": "3",
            "time_limit_minutes": "1440", "stock": "30", "starts_at": "2026-03-01T10:00", "ends_at": "2026-04-01T22:00",
            **fields}


def _post_offer(client, form: dict):
    page = client.get("/console/groupbuy/new")
    return client.post("/console/groupbuy", data={**form, "csrf": csrf_of(page.text)}, headers={"HX-Request": "true"},
                       follow_redirects=False)


def _offers() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Offer))


def test_a_marketer_creates_an_offer_in_yuan_and_the_api_reads_it_in_fen(client, shop):
    sign_in(client, shop["marketer"])
    answer = _post_offer(client, {**_offer_form(), "stores": ["S1", "S2"]})
    assert answer.status_code == 204, answer.text
    offer_id = int(answer.headers["HX-Redirect"].rsplit("/", 1)[1])
    api = client.get(f"/api/v1/groupbuy/offers/{offer_id}", headers=ADMIN).json()
    assert api["price_fen"] == 3990 and api["original_price_fen"] == 9900 and api["stores"] == ["S1", "S2"]
    assert api["starts_at"].startswith("2026-03-01T02:00:00")  # 10:00 in Shanghai
    page = client.get(f"/console/groupbuy/offers/{offer_id}").text
    assert "¥39.90" in page and "¥99.00" in page and "2026-03-01 10:00" in page
    assert "¥39.90" in client.get("/console/groupbuy").text


@pytest.mark.parametrize("fields,field,message", [
    ({"price": "abc"}, "price_fen", "an amount in yuan"),
    ({"price": "1.234"}, "price_fen", "at most two decimals"),
    ({"price": "0"}, "price_fen", "greater than 0"),
    ({"original_price": "10"}, "original_price_fen", "must not be below price_fen"),
    ({"ends_at": "2026-02-01T10:00"}, "ends_at", "ends_at must be after starts_at"),
    ({"group_size": "1"}, "group_size", "greater than or equal to 2"),
    ({"stock": ""}, "stock", "valid integer"),
    ({"starts_at": "soon"}, "starts_at", "starts_at"),
    ({"stores": ["S9"]}, "stores", "no store 'S9'"),
    ({"name": ""}, "name", "at least 1 character"),
])
def test_a_bad_offer_field_gets_the_api_s_message_next_to_it_and_nothing_is_saved(client, shop, fields, field,
                                                                                   message):
    sign_in(client, shop["marketer"])
    answer = _post_offer(client, _offer_form(**fields))
    assert answer.status_code == 422
    shown = re.search(rf'id="{field}-error">([^<]*)<', answer.text).group(1).replace("&#39;", "'")
    assert message in shown, shown
    assert _offers() == 0


def _order(s, offer, group, member_id, n, status, **extra) -> Order:
    order = Order(out_trade_no=f"GB{offer.id:04d}{n:06d}", offer_id=offer.id, group_id=group.id, member_id=member_id,
                  openid=f"o{n}", amount_fen=offer.price_fen, status=status, hold_until=utcnow(), **extra)
    s.add(order)
    s.flush()
    return order


@pytest.fixture
def deals(shop):
    """An offer with an open group (S1's members), a failed one (S1 and S2) with a refund, and S2's own group."""
    a, b, c = shop["ids"]["a"], shop["ids"]["b"], shop["ids"]["c"]
    with session_scope() as s:
        start = datetime(2026, 3, 1, 10, 0, tzinfo=SHANGHAI)
        offer = offers.create_offer(s, body=OfferIn(name="双人团", price_fen=1990, original_price_fen=5000,
                                                    group_size=2, time_limit_minutes=60, stock=100, starts_at=start,
                                                    ends_at=start + timedelta(days=30)))
        expires = datetime(2026, 3, 2, 12, 30, tzinfo=SHANGHAI)
        open_group = Group(offer_id=offer.id, leader_member_id=a, size=2, seats=1, paid=1, status="open",
                           expires_at=expires)
        failed = Group(offer_id=offer.id, leader_member_id=b, size=2, seats=0, paid=0, status="failed",
                       expires_at=expires, closed_at=expires)
        theirs = Group(offer_id=offer.id, leader_member_id=c, size=2, seats=2, paid=2, status="succeeded",
                       expires_at=expires, closed_at=expires)
        s.add_all([open_group, failed, theirs])
        s.flush()
        _order(s, offer, open_group, a, 1, "paid", paid_at=utcnow())
        refunded = _order(s, offer, failed, b, 2, "refunded")
        refunding = _order(s, offer, failed, c, 3, "refunding")
        _order(s, offer, theirs, c, 4, "paid")
        s.add(Refund(order_id=refunded.id, out_refund_no=f"R{refunded.out_trade_no}",
                     out_trade_no=refunded.out_trade_no, amount_fen=1990, reason="group failed", status="succeeded"))
        s.add(Refund(order_id=refunding.id, out_refund_no="RGB-c", out_trade_no=refunding.out_trade_no,
                     amount_fen=1990, reason="group failed", status="processing"))
        return {"offer": offer.id, "groups": (open_group.id, failed.id, theirs.id)}


def test_an_offer_shows_its_groups_orders_and_refunds_with_their_state_and_the_api_s_stats(client, shop, deals):
    sign_in(client, shop["marketer"])
    page = client.get(f"/console/groupbuy/offers/{deals['offer']}").text
    groups = re.search(r'id="groups">(.*?)</table>', page, re.S).group(1)
    assert groups.count("<tr>") == 4 and "拼团中" in groups and "未成团" in groups and "已成团" in groups
    assert "1 / 1 / 2" in groups and "2026-03-02 12:30" in groups  # seats held / paid / size; Shanghai time
    orders = re.search(r'id="orders">(.*?)</table>', page, re.S).group(1)
    assert orders.count("¥19.90") == 4 and "已退款" in orders and "退款中" in orders
    refunds = re.search(r'id="refunds">(.*?)</table>', page, re.S).group(1)
    assert "已退款" in refunds and "处理中" in refunds and "group failed" in refunds
    api = client.get(f"/api/v1/groupbuy/offers/{deals['offer']}", headers=ADMIN).json()["stats"]
    order_stats = dict(re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>",
                                  re.search(r'id="order-stats">(.*?)</table>', page, re.S).group(1)))
    assert order_stats == {label: str(api["orders"][s]) for s, label in
                           {"pending": "待支付", "paid": "已支付", "refunding": "退款中", "refunded": "已退款",
                            "released": "已释放"}.items()}
    # and the groups filter by state
    only_failed = client.get(f"/console/groupbuy/offers/{deals['offer']}?status=failed").text
    assert re.search(r'id="groups">(.*?)</table>', only_failed, re.S).group(1).count("<tr>") == 2
    assert client.get(f"/console/groupbuy/offers/{deals['offer']}?status=nope").status_code == 422


def test_a_store_manager_sees_only_their_store_s_members_and_creates_nothing_and_staff_see_none(client, shop, deals):
    sign_in(client, shop["manager"])
    page = client.get(f"/console/groupbuy/offers/{deals['offer']}").text
    orders = re.search(r'id="orders">(.*?)</table>', page, re.S).group(1)
    assert "王小明" in orders and "赵小红" in orders and "钱多多" not in orders  # S1's a and b, not S2's c
    groups = re.search(r'id="groups">(.*?)</table>', page, re.S).group(1)
    assert f"#{deals['groups'][2]}<" not in groups and groups.count("<tr>") == 3
    assert "RGB-c" not in page and 'id="order-stats"' not in page  # the API's whole-offer stats are marketers'
    assert client.get("/console/groupbuy/new").status_code == 403
    assert client.post("/console/groupbuy", data={"csrf": csrf_of(page)}).status_code == 403
    assert client.get("/console/groupbuy/offers/999").status_code == 404
    client.cookies.clear()
    sign_in(client, shop["staff"])
    assert client.get("/console/groupbuy").status_code == 403
    assert client.get(f"/console/groupbuy/offers/{deals['offer']}").status_code == 403
    assert client.get("/console/bookings").status_code == 403


def test_orders_page_by_cursor_and_an_offer_costs_the_same_statements_for_4_orders_as_for_40(client, shop, deals,
                                                                                              settings):
    sign_in(client, shop["marketer"])
    engine = engine_for(settings.database_url)
    url = f"/console/groupbuy/offers/{deals['offer']}"
    few = _count_statements(engine, lambda: client.get(url))
    with session_scope() as s:
        offer = s.get(Offer, deals["offer"])
        for n in range(36):
            m = bind(s, [IdentityIn("phone", f"1390000{n:04d}", verified=True)], name=f"团员{n}").member
            group = Group(offer_id=offer.id, leader_member_id=m.id, size=2, seats=1, paid=0, status="open",
                          expires_at=utcnow() + timedelta(hours=1))
            s.add(group)
            s.flush()
            _order(s, offer, group, m.id, 100 + n, "pending")
    many = _count_statements(engine, lambda: client.get(url))
    assert many == few
    page = client.get(url).text
    first = re.findall(r'<td class="data">(GB\d+)</td>', re.search(r'id="orders">(.*?)</table>', page, re.S).group(1))
    assert len(first) == 20
    cursor = re.search(r'/orders\?cursor=([^"&]+)', page).group(1)
    rest = client.get(f"{url}/orders?cursor={cursor}", headers={"HX-Request": "true"}).text
    second = re.findall(r'<td class="data">(GB\d+)</td>', rest)
    assert len(second) == 20 and not set(first) & set(second)
    assert client.get(f"{url}/nothing").status_code == 422


# -- 预约 -------------------------------------------------------------------------------------------------
@pytest.fixture
def booked(shop):
    """S1 and S2 open every day 09:00-21:00, hourly slots of 3 seats; bookings tomorrow in both stores."""
    tomorrow = (utcnow().astimezone(get_settings().tz) + timedelta(days=1)).date()
    with session_scope() as s:
        stores = {code: members.get_store_by_code(s, code) for code in ("S1", "S2")}
        for store in stores.values():
            catalog.set_schedule(s, store=store, hours=[catalog.Hours(d, 9 * 60, 21 * 60) for d in range(1, 8)],
                                 capacity=3, staff_capacity=1)
        catalog.create_service(s, code="eye", name="验光", duration_minutes=60, price_fen=0, stores=["S1", "S2"])
    ids = {}
    at = lambda h: datetime(tomorrow.year, tomorrow.month, tomorrow.day, h, tzinfo=get_settings().tz)  # noqa: E731
    with session_scope() as s:
        for key, member, store, hour in (("a10", "a", "S1", 10), ("b10", "b", "S1", 10), ("b14", "b", "S1", 14),
                                         ("c10", "c", "S2", 10)):
            booking, _ = bookings.book(s, member_id=shop["ids"][member], store=store, service="eye", start=at(hour))
            ids[key] = booking.id
    return {"day": tomorrow, "ids": ids}


def test_a_store_manager_sees_their_store_s_day_with_capacity_and_not_another_store(client, shop, booked):
    sign_in(client, shop["manager"])
    page = client.get(f"/console/bookings?date={booked['day']}")
    assert page.status_code == 200
    table = re.search(r'id="bookings">(.*?)</table>', page.text, re.S).group(1)
    assert table.count('id="booking-') == 3 and "钱多多" not in table and "10:00–11:00" in table
    capacity = dict((t, n) for t, n in re.findall(r"<tr><td>(\d\d:\d\d)</td><td>验光</td><td>([^<]+)</td>", page.text))
    assert capacity == {"10:00": "2 / 3", "14:00": "1 / 3"}
    assert client.get(f"/console/bookings?store=S2&date={booked['day']}").status_code == 404
    # a marketer reads any store, and is offered no moves (PATCH answers them 403)
    client.cookies.clear()
    sign_in(client, shop["marketer"])
    s2 = client.get(f"/console/bookings?store=S2&date={booked['day']}").text
    assert "钱多多" in s2 and "hx-post" not in re.search(r'id="bookings">(.*?)</table>', s2, re.S).group(1)
    assert client.post(f"/console/bookings/{booked['ids']['c10']}/move",
                       data={"status": "checked_in", "csrf": csrf_of(s2)}).status_code == 403


def _move(client, booking_id: int, to: str, view: str = "day"):
    page = client.get("/console/bookings")
    return client.post(f"/console/bookings/{booking_id}/move", data={"status": to, "view": view,
                                                                    "csrf": csrf_of(page.text)},
                       headers={"HX-Request": "true"})


def _at(day, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=get_settings().tz)


def _status(booking_id: int) -> str:
    with session_scope() as s:
        return s.get(Booking, booking_id).status


def test_a_store_manager_moves_a_booking_along_its_states_and_an_illegal_move_is_the_api_s_409(client, shop, booked):
    sign_in(client, shop["manager"])
    a10 = booked["ids"]["a10"]
    answer = _move(client, a10, "checked_in")
    assert answer.status_code == 200 and "已到店" in answer.text
    assert set(re.findall(r'data-to="(\w+)"', answer.text)) == {"in_service", "completed"}  # what §7 allows next
    assert _status(a10) == "checked_in"
    refused = _move(client, a10, "cancelled")
    assert refused.status_code == 409 and "is checked_in: it cannot become cancelled" in refused.text
    assert _status(a10) == "checked_in"
    assert _move(client, a10, "teleported").status_code == 422
    assert _move(client, booked["ids"]["c10"], "checked_in").status_code == 404  # S2's booking
    # the week view's cards move too, answering a card
    card = _move(client, booked["ids"]["b14"], "cancelled", view="week")
    assert card.status_code == 200 and card.text.lstrip().startswith('<div class="booking')
    assert _status(booked["ids"]["b14"]) == "cancelled"
    # and a cancelled booking gave its seat back
    page = client.get(f"/console/bookings?date={booked['day']}").text
    assert "<td>14:00</td><td>验光</td>" not in page and re.search(r"<td>10:00</td><td>验光</td><td>2 / 3</td>", page)
    with session_scope() as s:
        store_id = members.get_store_by_code(s, "S1").id
        taken = s.scalars(select(CapacityUnit.booked).where(CapacityUnit.store_id == store_id,
                                                            CapacityUnit.at >= _at(booked["day"], 14),
                                                            CapacityUnit.at < _at(booked["day"], 15))).all()
    assert taken and set(taken) == {0}


def test_the_week_puts_bookings_on_their_day_and_neither_view_grows_statements_with_bookings(client, shop, booked,
                                                                                              settings):
    sign_in(client, shop["manager"])
    engine = engine_for(settings.database_url)
    day = booked["day"]
    week = client.get(f"/console/bookings?date={day}&view=week").text
    column = re.search(rf'data-date="{day}">(.*?)</section>', week, re.S).group(1)
    assert column.count('class="booking') == 3 and "3 个" in column
    urls = (f"/console/bookings?date={day}", f"/console/bookings?date={day}&view=week")
    few = [_count_statements(engine, lambda u=u: client.get(u)) for u in urls]
    with session_scope() as s:
        for n in range(20):
            m = bind(s, [IdentityIn("phone", f"1370000{n:04d}", verified=True)], name=f"顾客{n}",
                     store_id=members.get_store_by_code(s, "S1").id).member
            start = datetime(day.year, day.month, day.day, 9 + n % 12, tzinfo=get_settings().tz)
            try:
                with s.begin_nested():
                    bookings.book(s, member_id=m.id, store="S1", service="eye", start=start)
            except SlotFull:
                pass
    many = [_count_statements(engine, lambda u=u: client.get(u)) for u in urls]
    assert many == few
    week = client.get(f"/console/bookings?date={day}&view=week").text
    column = re.search(rf'data-date="{day}">(.*?)</section>', week, re.S).group(1)
    assert column.count('class="booking') == booking_pages.WEEK_SHOWN and "还有" in column


def test_a_day_pages_by_cursor_in_time_order(client, shop, booked, monkeypatch):
    monkeypatch.setattr(booking_pages, "PAGE", 2)
    sign_in(client, shop["manager"])
    page = client.get(f"/console/bookings?date={booked['day']}").text
    first = re.findall(r'id="booking-(\d+)"', page)
    cursor = re.search(r"cursor=([^\"&]+)", page).group(1)
    rest = client.get(f"/console/bookings?date={booked['day']}&cursor={cursor}", headers={"HX-Request": "true"}).text
    second = re.findall(r'id="booking-(\d+)"', rest)
    ids = booked["ids"]
    assert first == [str(ids["a10"]), str(ids["b10"])] and second == [str(ids["b14"])]
    assert "cursor=" not in rest
    assert client.get(f"/console/bookings?date={booked['day']}&cursor=bogus").status_code == 422
