"""Group-buy end to end over real HTTP: invitation, seats, WeChat Pay (sandbox), success, failure, refunds."""
from __future__ import annotations

from sqlalchemy import func, select

from bot.sandbox.state import get_state
from config.database import session_scope
from campaigns.groupbuy.models import Refund
from membership.models import TimelineEvent
from membership.traits import get_traits
from tests.campaigns.groupbuy.conftest import (ADMIN, consumer, drain, make_offer, order_row, pay, refunds_settle,
                                                time_passes)


def _timeline(member_id: int) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(TimelineEvent.type).where(TimelineEvent.member_id == member_id,
                                                               TimelineEvent.type.startswith("groupbuy."))
                              .order_by(TimelineEvent.id)))


def _spent(member_id: int) -> int:
    with session_scope() as s:
        return int(get_traits(s, member_id).get("total_spent_fen", 0))


def test_a_staff_invitation_to_a_paid_full_group_lands_on_the_timeline_and_credits_the_staff_member(http):
    # given a store, a staff member, and an offer for groups of 3
    http.post("/api/v1/stores", json={"code": "S001", "name": "静安店"}, headers=ADMIN)
    http.post("/api/v1/staff", json={"userid": "zhangsan", "name": "张三", "store": "S001"}, headers=ADMIN)
    offer = make_offer(http, stores=["S001"])
    people = [consumer(i) for i in range(3)]
    # when the first consumer, invited by zhangsan in his store, opens a group there, and two friends join through
    # the same link
    opened = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", json={"ref": "zhangsan", "store": "S001"},
                       headers=people[0][1])
    assert opened.status_code == 201, opened.text
    group_id = opened.json()["group_id"]
    seen = http.get(f"/mp/v1/groupbuy/offers/{offer['id']}", headers=people[1][1]).json()
    assert [(g["id"], g["store"], g["seats"]) for g in seen["groups"]] == [(group_id, "S001", 1)]
    joined = [http.post(f"/mp/v1/groupbuy/groups/{group_id}/join", json={"ref": "zhangsan"}, headers=h)
              for _, h in people[1:]]
    assert [j.status_code for j in joined] == [201, 201]
    orders = [opened.json()["order"]] + [j.json()["order"] for j in joined]
    assert {o["amount_fen"] for o in orders} == {9900}
    assert all(o["pay_params"]["package"].startswith("prepay_id=wx") for o in orders)
    # then the group is full: a fourth consumer is refused
    fourth = consumer(3)
    assert http.post(f"/mp/v1/groupbuy/groups/{group_id}/join", headers=fourth[1]).status_code == 409
    # when all three pay in WeChat (the sandbox notifies Siyu over HTTP)
    for o in orders:
        assert pay(o["out_trade_no"]).status_code == 200
    drain()
    # then each order is paid and the group succeeded, as the consumer sees it
    for (member_id, headers), o in zip(people, orders, strict=True):
        seen = http.get(f"/mp/v1/groupbuy/orders/{o['out_trade_no']}", headers=headers).json()
        assert seen == {"out_trade_no": o["out_trade_no"], "status": "paid", "amount_fen": 9900,
                        "group": {"id": group_id, "status": "succeeded", "size": 3, "paid": 3}}
        # and the member's timeline tells the story, and their spend follows the payment
        assert _timeline(member_id) == ["groupbuy.joined", "groupbuy.paid", "groupbuy.succeeded"]
        assert _spent(member_id) == 9900
    # and the card of the member who opened the group lists the paid order of the succeeded group
    card = http.get("/mp/v1/me", headers=people[0][1]).json()
    assert [(o["out_trade_no"], o["status"], o["group"]["status"]) for o in card["orders"]] == [
        (orders[0]["out_trade_no"], "paid", "succeeded")]
    # and another member may not read the order
    assert http.get(f"/mp/v1/groupbuy/orders/{orders[0]['out_trade_no']}", headers=fourth[1]).status_code == 404
    # and zhangsan is credited with the three paid seats
    stats = http.get(f"/api/v1/groupbuy/offers/{offer['id']}", headers=ADMIN).json()["stats"]
    assert stats["by_staff"] == {"zhangsan": {"orders": 3, "paid": 3, "paid_fen": 29700}}
    assert stats["groups"]["succeeded"] == 1 and stats["orders"]["paid"] == 3
    with session_scope() as s:
        paid = s.scalars(select(TimelineEvent.data).where(TimelineEvent.type == "groupbuy.paid")).all()
    assert {d["staff"] for d in paid} == {"zhangsan"}


def test_a_group_is_opened_in_one_of_the_offers_stores_and_joined_in_that_store_only(http):
    from membership.models import Member, Store

    # given stores S1, S2, S3 and an offer sold in S1 and S2 only
    for code in ("S1", "S2", "S3"):
        assert http.post("/api/v1/stores", json={"code": code, "name": code}, headers=ADMIN).status_code == 201
    offer = make_offer(http, stores=["S1", "S2"])
    url = f"/mp/v1/groupbuy/offers/{offer['id']}/groups"
    nowhere, homed_s3, homed_s2, friend = (consumer(i) for i in range(4))
    with session_scope() as s:
        stores = {st.code: st.id for st in s.scalars(select(Store))}
        s.get(Member, homed_s3[0]).store_id = stores["S3"]
        s.get(Member, homed_s2[0]).store_id = stores["S2"]
    # when a consumer names a store outside the list, or names none and has none (or another) of their own
    outside = http.post(url, json={"store": "S3"}, headers=nowhere[1])
    unnamed = http.post(url, json={}, headers=nowhere[1])
    wrong_home = http.post(url, headers=homed_s3[1])
    unknown = http.post(url, json={"store": "S9"}, headers=nowhere[1])
    # then each is 422 naming the stores the offer is sold in, and nothing was taken
    for answer in (outside, unnamed, wrong_home, unknown):
        assert answer.status_code == 422, answer.text
    assert "sold in S1, S2 only, not in 'S3'" in outside.json()["detail"]
    assert "name one of them" in unnamed.json()["detail"] and "'S3'" in wrong_home.json()["detail"]
    assert "no store 'S9'" in unknown.json()["detail"]
    assert http.get(f"/api/v1/groupbuy/offers/{offer['id']}", headers=ADMIN).json()["remaining"] == 30
    # when a consumer of S2 opens a group without naming a store, and another names S1
    in_s2 = http.post(url, headers=homed_s2[1])
    in_s1 = http.post(url, json={"store": "S1"}, headers=homed_s3[1])
    assert (in_s2.status_code, in_s1.status_code) == (201, 201), (in_s2.text, in_s1.text)
    # then the groups buy in S2 (the member's own store) and S1, and each store's groups can be listed
    seen = http.get(f"/mp/v1/groupbuy/offers/{offer['id']}", headers=friend[1]).json()["groups"]
    assert {(g["id"], g["store"]) for g in seen} == {(in_s2.json()["group_id"], "S2"), (in_s1.json()["group_id"], "S1")}
    only_s1 = http.get(f"/mp/v1/groupbuy/offers/{offer['id']}", params={"store": "S1"}, headers=friend[1]).json()
    assert [g["id"] for g in only_s1["groups"]] == [in_s1.json()["group_id"]]
    # and a friend joins the S2 group through its link, but not as a buyer in another store
    join = f"/mp/v1/groupbuy/groups/{in_s2.json()['group_id']}/join"
    elsewhere = http.post(join, json={"store": "S1"}, headers=friend[1])
    assert elsewhere.status_code == 409 and "buys in store S2" in elsewhere.json()["detail"]
    assert http.post(join, json={"store": "S2"}, headers=friend[1]).status_code == 201


def test_a_group_that_expires_unfilled_refunds_each_paid_seat_once_and_releases_the_unpaid_one(http, clock):
    # given a group of 3 with two paid seats and one unpaid
    offer = make_offer(http)
    people = [consumer(i) for i in range(3)]
    opened = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=people[0][1]).json()
    group_id = opened["group_id"]
    others = [http.post(f"/mp/v1/groupbuy/groups/{group_id}/join", headers=h).json()["order"] for _, h in people[1:]]
    paid_nos = [opened["order"]["out_trade_no"], others[0]["out_trade_no"]]
    for no in paid_nos:
        pay(no)
    drain()
    # when the group's deadline passes (and its deadline job runs twice, as a retry would)
    time_passes(deadlines=True)
    assert clock.run_delayed("deadline_job") == 1
    from campaigns.groupbuy.groups import deadline_job

    assert deadline_job(group_id) == "unchanged"
    drain()
    # then each paid seat's refund is asked for once, and WeChat Pay is processing it
    with session_scope() as s:
        assert {r.status for r in s.scalars(select(Refund))} == {"processing"}
    assert all(order_row(no).status == "refunding" for no in paid_nos)
    # when WeChat Pay settles them and notifies Siyu
    assert [a.status_code for a in refunds_settle(clock)] == [200, 200]
    # then each paid seat is refunded once, under an out_refund_no derived from its own order
    with session_scope() as s:
        refunds = {r.out_trade_no: r for r in s.scalars(select(Refund))}
    assert set(refunds) == set(paid_nos)
    assert all(r.out_refund_no == f"R{no}" and r.status == "succeeded" for no, r in refunds.items())
    sandbox_refunds = [r for r in get_state().pay_refunds.values()]
    assert sorted(r["out_refund_no"] for r in sandbox_refunds) == sorted(f"R{no}" for no in paid_nos)
    assert all(r["amount"]["refund"] == 9900 for r in sandbox_refunds)
    for no in paid_nos:
        assert order_row(no).status == "refunded"
    # and the unpaid seat was released, its stock back on sale
    assert order_row(others[1]["out_trade_no"]).status == "released"
    assert http.get(f"/api/v1/groupbuy/offers/{offer['id']}", headers=ADMIN).json()["remaining"] == 30
    # and the paying members' timelines and spend show the refund
    for member_id, _ in people[:2]:
        assert _timeline(member_id) == ["groupbuy.joined", "groupbuy.paid", "groupbuy.failed", "groupbuy.refunded"]
        assert _spent(member_id) == 0
    # and the refund notifications WeChat Pay sends afterwards change nothing
    from bot.sandbox.callbacks import notify_refunded
    from config.settings import get_settings

    for no in paid_nos:
        assert notify_refunded(f"R{no}", f"{get_settings().public_url}webhooks/wechatpay").status_code == 200
    drain()
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(TimelineEvent)
                        .where(TimelineEvent.type == "groupbuy.refunded")) == 2


def test_a_payment_after_the_hold_is_released_is_refunded_automatically(http, clock):
    # given a seat held and not paid in time
    offer = make_offer(http)
    member_id, headers = consumer(1)
    order = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers).json()["order"]
    time_passes(holds=True)
    assert clock.run_delayed("release_job") == 1
    drain()
    assert order_row(order["out_trade_no"]).status == "released"
    group = http.get(f"/mp/v1/groupbuy/orders/{order['out_trade_no']}", headers=headers).json()["group"]
    assert group["status"] == "open"
    # when the payment arrives anyway (WeChat's cashier was already open)
    get_state().pay_orders[order["out_trade_no"]]["trade_state"] = "NOTPAY"  # the sandbox closed it; a race did not
    assert pay(order["out_trade_no"]).status_code == 200
    drain()
    refunds_settle(clock)
    # then the money goes back, once, and the member's spend nets to zero
    row = order_row(order["out_trade_no"])
    assert row.status == "refunded" and row.late
    assert [r["out_refund_no"] for r in get_state().pay_refunds.values()] == [f"R{order['out_trade_no']}"]
    assert _timeline(member_id) == ["groupbuy.joined", "groupbuy.paid", "groupbuy.refunded"]
    assert _spent(member_id) == 0


def test_a_refund_call_that_fails_once_is_retried_with_the_same_out_refund_no(http, clock, stand_in):
    from bot.clients import pay_client
    from bot.errors import TransportError

    # given WeChat Pay whose first refund call times out (the refund is not taken)
    real = pay_client()
    calls = []

    class FlakyPay:
        def __getattr__(self, name):
            return getattr(real, name)

        def refund(self, out_trade_no, out_refund_no, *args, **kwargs):
            calls.append(out_refund_no)
            if len(calls) == 1:
                raise TransportError(None, "ReadTimeout: timed out", "pay/refund")
            return real.refund(out_trade_no, out_refund_no, *args, **kwargs)

    stand_in(pay=FlakyPay())
    # and a paid seat in a group that fails
    offer = make_offer(http)
    _, headers = consumer(1)
    order = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers).json()["order"]
    pay(order["out_trade_no"])
    drain()
    # when the group fails and its refund is made: the first call times out, the queue retries
    time_passes(deadlines=True)
    clock.run_delayed("deadline_job")
    drain()  # includes the queue's retry, 5 seconds later
    # then the retry asked the refund query first (no refund there), then called again with the same out_refund_no
    with session_scope() as s:
        refund = s.scalar(select(Refund))
    assert calls == [f"R{order['out_trade_no']}"] * 2
    assert refund.status == "processing" and refund.attempts == 2
    # and once WeChat Pay has settled it, the refund query reconciles it (no notification came)
    refunds_settle(clock, notify=False)
    with session_scope() as s:
        refund = s.scalar(select(Refund))
    assert refund.status == "succeeded" and refund.attempts == 2
    # and WeChat Pay holds one refund of the order, which is refunded
    assert list(get_state().pay_refunds) == [f"R{order['out_trade_no']}"]
    assert order_row(order["out_trade_no"]).status == "refunded"
    # and another run of the job changes nothing and calls nobody
    from campaigns.groupbuy.refunds import refund_job

    assert refund_job(refund.id) == "succeeded" and len(calls) == 2


def test_a_merge_moves_the_merged_members_orders_to_the_survivor_and_their_card(http):
    from campaigns.groupbuy.offers import orders_of_member
    from membership.merge import merge_members
    from membership.models import Member

    # given two members who turn out to be one person, each holding a seat of a different group
    first, first_headers = consumer(31)
    second, second_headers = consumer(32)
    offer = make_offer(http)
    a = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", json={}, headers=first_headers)
    b = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", json={}, headers=second_headers)
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    # when the second is merged into the first
    with session_scope() as s:
        assert merge_members(s, s.get(Member, first), s.get(Member, second), "test")
    # then the survivor holds both orders: on their card and readable with their session
    with session_scope() as s:
        numbers = {o["out_trade_no"] for o in orders_of_member(s, first)}
        assert numbers == {a.json()["order"]["out_trade_no"], b.json()["order"]["out_trade_no"]}
        assert orders_of_member(s, second) == []
    mine = http.get(f"/mp/v1/groupbuy/orders/{b.json()['order']['out_trade_no']}", headers=first_headers)
    assert mine.status_code == 200, mine.text
