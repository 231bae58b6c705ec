"""Staff leave end to end against the sandbox: claim, send, poll and callbacks, in either order, each effect once."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.sandbox import events
from webhooks.transfers import service
from webhooks.transfers.models import Transfer
from webhooks.transfers.results import poll_transfers
from config.database import session_scope
from config.types import utcnow
from membership.models import Staff
from tests.webhooks.transfers.conftest import (
    ADMIN, CUSTOMERS, contact_events, deliver, relation_state, relations, snapshot,
)
from tests.webhooks.conftest import inbox_rows

C1, C2, C3 = CUSTOMERS
DAY = 24 * 3600
SEND = "externalcontact/transfer_customer"


@pytest.mark.parametrize("order", ["poll_first", "callbacks_first"])
def test_three_customers_one_taken_over_one_too_often_handed_over_one_refusing(chain, client, order):
    sandbox = chain
    # given C2 was already handed over twice in the last 90 days
    sandbox.add_past_handover("zhangsan", "qianqi", C2, days_ago=50)
    sandbox.add_past_handover("qianqi", "zhangsan", C2, days_ago=20)
    # when zhangsan's customers (all of them, by default) are handed over to lisi
    r = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi"}, headers=ADMIN)
    # then WeCom started C1 and C3 and refused C2 at once (40128: 客户转接过于频繁), in one call
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["handover"], body["takeover"], body["resigned"]) == ("zhangsan", "lisi", False)
    got = {c["external_userid"]: c for c in body["customers"]}
    assert {e: (c["status"], c["errcode"]) for e, c in got.items()} == {
        C1: ("waiting", 0), C2: ("failed", 40128), C3: ("waiting", 0)}
    assert got[C1]["transfer_id"] and got[C1]["takeover_at"]
    assert sandbox.calls[SEND] == 1

    # when C3 refuses, C1 lets the 24 hours pass, and Siyu hears of it by polling and by WeCom's callbacks
    sandbox.refuse_transfer(C3)
    sandbox.advance(DAY + 1)
    if order == "poll_first":
        poll_transfers()
        deliver(client, sandbox.take_transfer_callbacks())
    else:
        sandbox.settle_transfers()
        deliver(client, sandbox.take_transfer_callbacks())
        poll_transfers()

    # then C1 is lisi's now: zhangsan's relation ended as transferred, lisi's active with the same code state
    rels = relations()
    assert rels[C1] == {("zhangsan", "transferred"), ("lisi", "active")}
    assert relation_state(C1, "lisi") == "STORE1"
    # and C2 and C3 stay with zhangsan alone
    assert rels[C2] == rels[C3] == {("zhangsan", "active")}
    # and each customer's timeline says it once
    c1 = contact_events(C1)
    [transferred] = [d for t, d in c1 if t == "contact.transferred"]
    assert (transferred["staff"], transferred["from"], transferred["to"]) == ("zhangsan", "zhangsan", "lisi")
    assert [t for t, _ in c1].count("contact.added") == 2  # zhangsan's, then lisi's
    [(_, refused)] = [(t, d) for t, d in contact_events(C3) if t == "contact.transfer_failed"]
    assert (refused["reason"], refused["to"]) == ("customer_refused", "lisi")
    [(_, too_often)] = [(t, d) for t, d in contact_events(C2) if t == "contact.transfer_failed"]
    assert too_often["errcode"] == 40128
    assert all(t != "contact.transferred" for t, _ in contact_events(C2) + contact_events(C3))
    with session_scope() as s:
        assert {t.external_userid: t.status for t in s.scalars(select(Transfer))} == {
            C1: "succeeded", C2: "failed", C3: "refused"}

    # when the poll runs again and WeCom sends its callbacks once more (new deliveries of the same facts)
    before, handled = snapshot(), len(inbox_rows())
    poll_transfers()
    deliver(client, _redone(sandbox))
    # then they were handled, and nothing changed, and nothing was sent again
    assert [r.status for r in inbox_rows()[handled:]] == ["done"] * 3
    assert snapshot() == before
    assert sandbox.calls[SEND] == 1


def _redone(sandbox) -> list[str]:
    # The callbacks of the settled handovers, created anew (so that the inbox does not drop them as repeats).
    corp, later = sandbox.corp_id, int(sandbox.now()) + 60
    return [events.del_external_contact(corp, "zhangsan", C1, source="DELETE_BY_TRANSFER", create_time=later),
            events.add_external_contact(corp, "lisi", C1, create_time=later),
            events.transfer_fail(corp, "lisi", C3, "customer_refused", create_time=later)]


def test_a_timeout_is_unknown_and_reconciled_through_transfer_result_not_sent_again(chain, client):
    sandbox = chain
    # given WeCom carries out the transfer but its answer is lost (a timeout, as far as Siyu can tell)
    sandbox.lose_answer(SEND)
    # when C1 is handed over
    r = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1]}, headers=ADMIN)
    # then its outcome is unknown
    assert r.status_code == 202
    [answer] = r.json()["customers"]
    assert answer["status"] == "unknown" and "errcode" not in answer
    # when the same handover is asked for again before anything is known
    again = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1]}, headers=ADMIN)
    # then it answers with the same row and sends nothing
    assert [c["transfer_id"] for c in again.json()["customers"]] == [answer["transfer_id"]]
    assert sandbox.calls[SEND] == 1
    # when the poll asks WeCom
    poll_transfers()
    # then transfer_result says the handover began: the row waits, and still nothing was sent again
    with session_scope() as s:
        row = s.get(Transfer, answer["transfer_id"])
        assert (row.status, row.takeover_status) == ("waiting", 2) and row.takeover_at is not None
    assert sandbox.calls[SEND] == 1
    # when the 24 hours pass and the poll runs
    sandbox.advance(DAY + 1)
    poll_transfers()
    # then C1 is lisi's, written once
    assert relations()[C1] == {("zhangsan", "transferred"), ("lisi", "active")}
    assert [t for t, _ in contact_events(C1)].count("contact.transferred") == 1
    assert sandbox.calls[SEND] == 1


def test_a_claim_whose_request_died_before_the_call_is_failed_once_wecom_shows_no_record(chain, client):
    sandbox = chain
    # given C1 was handed from zhangsan to lisi 100 days ago (transfer_result still lists that handover)
    sandbox.add_past_handover("zhangsan", "lisi", C1, days_ago=100)
    # and a claim committed 11 minutes ago by a request that died before WeCom heard of it
    with session_scope() as s:
        claim = service.claim_transfers(s, handover_userid="zhangsan", takeover_userid="lisi", external_userids=[C1],
                                        now=utcnow() - timedelta(minutes=11))
    [transfer_id] = claim.new_ids
    # when the poll runs
    poll_transfers()
    # then the stale claim was reconciled: WeCom has no record of it (the old takeover is not this one's), so it
    # failed, and nothing was sent
    with session_scope() as s:
        row = s.get(Transfer, transfer_id)
        assert row.status == "failed" and "no record" in row.reason
    assert sandbox.calls[SEND] == 0 and sandbox.calls["externalcontact/transfer_result"]
    assert relations()[C1] == {("zhangsan", "active")}
    assert all(t != "contact.transfer_failed" for t, _ in contact_events(C1))  # no customer did anything
    # and the customer may be handed over again
    retry = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1]}, headers=ADMIN)
    assert retry.json()["customers"][0]["status"] == "waiting" and sandbox.calls[SEND] == 1


def test_a_staff_member_who_left_has_their_customers_handed_over_by_resigned_transfer(chain, client):
    sandbox = chain
    # given zhangsan left: gone from WeCom's directory, inactive in Siyu
    sandbox.resign_staff("zhangsan")
    with session_scope() as s:
        s.scalar(select(Staff).where(Staff.userid == "zhangsan")).active = False
    # when their customers are handed over without saying how
    r = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi"}, headers=ADMIN)
    # then 离职继承 was used
    assert r.status_code == 202 and r.json()["resigned"] is True
    assert {c["status"] for c in r.json()["customers"]} == {"waiting"}
    assert sandbox.calls["externalcontact/resigned/transfer_customer"] == 1 and sandbox.calls[SEND] == 0
    # when the customers are taken over and the poll asks resigned/transfer_result
    sandbox.advance(DAY + 1)
    poll_transfers()
    # then every one of them is lisi's
    assert sandbox.calls["externalcontact/resigned/transfer_result"]
    assert not sandbox.calls["externalcontact/transfer_result"]
    assert all(rel == {("zhangsan", "transferred"), ("lisi", "active")} for rel in relations().values())
    assert all(d["resigned"] for ext in CUSTOMERS for t, d in contact_events(ext) if t == "contact.transferred")


def test_a_handover_the_takeover_has_no_room_for_fails_with_the_reason_and_the_customer_stays(chain, client):
    sandbox = chain
    client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1]}, headers=ADMIN)
    # when lisi has reached WeCom's customer limit (status 4) and only the callback tells Siyu
    sandbox.takeover_full(C1)
    deliver(client, sandbox.take_transfer_callbacks())
    poll_transfers()
    # then the row failed with the reason, and the relation is unchanged
    with session_scope() as s:
        row = s.scalar(select(Transfer))
        assert (row.status, row.reason, row.takeover_status) == ("failed", "customer_limit_exceed", 4)
    assert relations()[C1] == {("zhangsan", "active")}
    assert [d["reason"] for t, d in contact_events(C1) if t == "contact.transfer_failed"] == ["customer_limit_exceed"]


def test_a_waiting_handover_wecom_never_lists_fails_a_day_after_it_was_due(chain, client):
    sandbox = chain
    client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1]}, headers=ADMIN)
    sandbox.handovers.clear()  # WeCom lost it
    # when the poll runs within a day of the takeover time, and then later
    poll_transfers(now=utcnow() + timedelta(days=1, hours=12))
    with session_scope() as s:
        assert s.scalar(select(Transfer.status)) == "waiting"
    poll_transfers(now=utcnow() + timedelta(days=2, hours=1))
    # then it failed once it could no longer be merely late, and the relation is unchanged
    with session_scope() as s:
        row = s.scalar(select(Transfer))
        assert row.status == "failed" and "no record" in row.reason
    assert relations()[C1] == {("zhangsan", "active")}
