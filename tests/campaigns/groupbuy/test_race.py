"""On PostgreSQL: 500 consumers race over the HTTP API for 100 seats in groups of 5."""
from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from bot.sandbox.state import get_state
from config.database import session_scope
from campaigns.groupbuy.models import Group, Offer, Order, Refund
from tests.campaigns.groupbuy.conftest import consumer, drain, make_offer, pay, refunds_settle, time_passes

CONSUMERS, SEATS, SIZE, CLIENTS = 500, 100, 5, 50


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_500_consumers_racing_for_100_seats_never_overfill_and_every_failed_seat_is_refunded_once(siyu, http,
                                                                                               clock):
    # given an offer of 100 seats in groups of 5, and 500 signed-in consumers, one in ten of whom never pays
    offer = make_offer(http, group_size=SIZE, stock=SEATS, price_fen=5000, original_price_fen=8000)
    people = [consumer(i) for i in range(CONSUMERS)]
    answers: Counter = Counter()

    def buy(i: int) -> dict | None:
        rnd = random.Random(i)
        _, headers = people[i]
        with httpx.Client(base_url=siyu, timeout=60) as c:
            for _ in range(6):
                groups = c.get(f"/mp/v1/groupbuy/offers/{offer['id']}", headers=headers).json()["groups"]
                if groups and rnd.random() < 0.8:
                    r = c.post(f"/mp/v1/groupbuy/groups/{rnd.choice(groups)['id']}/join", headers=headers)
                else:
                    r = c.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers, json={})
                answers[r.status_code] += 1
                if r.status_code == 201:
                    order = r.json()["order"]
                    if i % 10:
                        assert pay(order["out_trade_no"]).status_code == 200
                    return order
                assert r.status_code == 409, r.text
                if "sold out" in r.json()["detail"]:
                    return None
        return None

    # when they all race over HTTP, 50 at a time, and pay as they get a seat
    with ThreadPoolExecutor(CLIENTS) as pool:
        orders = [o for o in pool.map(buy, range(CONSUMERS)) if o]
    drain()
    # then no more seats were sold than there are, and some consumers were turned away
    assert SEATS // 2 < len(orders) <= SEATS and answers[409] > 0
    # when the unpaid holds run out and every group's deadline passes
    time_passes(holds=True, deadlines=True)
    clock.run_delayed("release_job")
    clock.run_delayed("deadline_job")
    drain()
    # and WeChat Pay settles the refunds it was processing (notifying Siyu, which also queries them)
    refunds_settle(clock)
    with session_scope() as s:
        groups = list(s.scalars(select(Group).where(Group.offer_id == offer["id"])))
        rows = list(s.scalars(select(Order).where(Order.offer_id == offer["id"])))
        refunds = {r.order_id: r for r in s.scalars(select(Refund))}
        taken = s.scalar(select(Offer.stock_taken).where(Offer.id == offer["id"]))
    by_group = {g.id: [o for o in rows if o.group_id == g.id] for g in groups}
    paid_seats = [o for o in rows if o.paid_at is not None]
    # then at most 100 seats were paid, and no group ever held or paid more than 5
    assert len(paid_seats) <= SEATS
    assert all(g.seats <= SIZE and g.paid <= SIZE for g in groups)
    assert all(len([o for o in orders_ if o.paid_at is not None]) <= SIZE for orders_ in by_group.values())
    # and every group ended: the full ones succeeded with 5 paid seats and no refund
    assert {g.status for g in groups} <= {"succeeded", "failed"}
    succeeded = [g for g in groups if g.status == "succeeded"]
    for g in succeeded:
        assert sorted(o.status for o in by_group[g.id]) == ["paid"] * SIZE
        assert not [o for o in by_group[g.id] if o.id in refunds]
    # and every paid seat of a failed group was refunded exactly once, under its own out_refund_no
    failed_paid = [o for g in groups if g.status == "failed" for o in by_group[g.id] if o.paid_at is not None]
    assert failed_paid, "the race left no failed group with a paid seat: nothing was proven about refunds"
    at_pay = get_state().pay_refunds
    for o in failed_paid:
        assert o.status == "refunded" and refunds[o.id].status == "succeeded"
        assert refunds[o.id].out_refund_no == f"R{o.out_trade_no}" and refunds[o.id].attempts == 1
        assert at_pay[f"R{o.out_trade_no}"]["amount"]["refund"] == o.amount_fen
    assert len(at_pay) == len(refunds) == len(failed_paid)
    assert Counter(r["out_trade_no"] for r in at_pay.values()).most_common(1)[0][1] == 1
    # and the stock still taken is exactly the seats of the groups that succeeded
    assert taken == SIZE * len(succeeded)
