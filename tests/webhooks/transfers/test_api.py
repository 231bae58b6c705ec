"""POST /api/v1/staff/{userid}/transfer and GET …/transfers: who may, what is refused, what is read back."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from bot.credentials import SANDBOX_CORP_ID
from webhooks.transfers import service
from webhooks.transfers.models import Transfer
from config.database import engine_for, session_scope
from membership.identity import IdentityIn, bind
from membership.models import Staff
from membership.service import add_relation, upsert_staff
from tests.webhooks.transfers.conftest import ADMIN, CUSTOMERS, token
from tests.membership.test_staff_scope import _wait_until_blocked

C1, C2, C3 = CUSTOMERS
SEND = "externalcontact/transfer_customer"


def test_a_store_manager_of_another_store_may_neither_transfer_nor_read(chain, client):
    sandbox = chain
    other = token(client, "store_manager", "S002")
    # when S002's manager hands over zhangsan (of S001), to their own qianqi or to lisi, or reads zhangsan's handovers
    answers = [client.post("/api/v1/staff/zhangsan/transfer", json={"to": to}, headers=other)
               for to in ("qianqi", "lisi")]
    read = client.get("/api/v1/staff/zhangsan/transfers", headers=other)
    # then every answer is 403, and WeCom heard nothing
    assert [r.status_code for r in answers] == [403, 403] and read.status_code == 403
    assert sandbox.calls[SEND] == 0
    with session_scope() as s:
        assert s.scalar(select(Transfer.id)) is None


def test_a_store_manager_hands_over_within_their_own_store_only(chain, client):
    sandbox = chain
    own = token(client, "store_manager", "S001")
    # when S001's manager hands zhangsan's customer to qianqi of S002
    away = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "qianqi", "customers": [C1]}, headers=own)
    # then it is refused; to lisi of S001 it is accepted
    assert away.status_code == 403 and sandbox.calls[SEND] == 0
    home = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1]}, headers=own)
    assert home.status_code == 202 and home.json()["customers"][0]["status"] == "waiting"
    assert client.get("/api/v1/staff/zhangsan/transfers", headers=own).status_code == 200


@pytest.mark.parametrize("role", ["marketer", "staff"])
def test_other_roles_may_not_transfer(chain, client, role):
    # zhangsan themselves (staff) or a marketer
    headers = token(client, role, *(("S001", "zhangsan") if role == "staff" else ()))
    r = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi"}, headers=headers)
    assert r.status_code == 403 and chain.calls[SEND] == 0


@pytest.mark.parametrize("path, body, status", [
    ("ghost", {"to": "lisi"}, 404),
    ("zhangsan", {"to": "ghost"}, 422),
    ("zhangsan", {"to": "zhangsan"}, 422),
    ("zhangsan", {"to": "gone"}, 422),
    ("zhangsan", {"to": "lisi", "customers": [C1, "wmSTRANGER"]}, 422),
    ("zhangsan", {"to": "lisi", "customers": []}, 422),
    ("zhangsan", {"to": "lisi", "resigned": True, "transfer_success_msg": "你好"}, 422),
    ("zhangsan", {"to": "lisi", "transfer_success_msg": "长" * 201}, 422),
], ids=["unknown-handover", "unknown-takeover", "to-oneself", "inactive-takeover", "not-their-customer",
        "no-customers", "message-with-resigned", "long-message"])
def test_a_transfer_that_cannot_be_made_is_refused_before_wecom_hears_of_it(chain, client, path, body, status):
    with session_scope() as s:
        s.add(Staff(userid="gone", name="gone", active=False))
    r = client.post(f"/api/v1/staff/{path}/transfer", json=body, headers=ADMIN)
    assert r.status_code == status, r.text
    assert chain.calls[SEND] == 0 and r.json()["detail"]


def test_a_repeated_request_answers_the_open_handovers_and_sends_only_the_new_customer(chain, client):
    sandbox = chain
    first = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1, C2]}, headers=ADMIN)
    # when the request is repeated with one more customer
    second = client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi"}, headers=ADMIN)
    # then C1 and C2 keep their rows, and only C3 went to WeCom, in a second call of one customer
    ids = {c["external_userid"]: c["transfer_id"] for c in first.json()["customers"]}
    again = {c["external_userid"]: c["transfer_id"] for c in second.json()["customers"]}
    assert again[C1] == ids[C1] and again[C2] == ids[C2] and C3 not in ids
    assert sandbox.calls[SEND] == 2
    assert sum(1 for r in sandbox.handovers if r["external_userid"] == C1) == 1


def test_the_handovers_of_a_staff_member_read_back_newest_first_a_page_at_a_time(chain, client):
    client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C1]}, headers=ADMIN)
    client.post("/api/v1/staff/zhangsan/transfer", json={"to": "lisi", "customers": [C2, C3]}, headers=ADMIN)
    # when read one at a time
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/staff/zhangsan/transfers", params=params, headers=ADMIN).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # then every row came once, newest first, with its batch and status
    assert [i["external_userid"] for i in seen] == [C3, C2, C1]
    assert len({i["batch"] for i in seen}) == 2 and {i["status"] for i in seen} == {"waiting"}
    failed = client.get("/api/v1/staff/zhangsan/transfers", params={"status": "failed"}, headers=ADMIN)
    assert failed.json()["items"] == []


def test_two_concurrent_requests_claim_each_customer_once(pg_url):
    engine = engine_for(pg_url)
    with session_scope(engine) as s:
        zhangsan = upsert_staff(s, userid="zhangsan", name="张三", store_id=None)
        upsert_staff(s, userid="lisi", name="李四", store_id=None)
        for ext in CUSTOMERS:
            member = bind(s, [IdentityIn("wecom_external", ext, SANDBOX_CORP_ID)]).member
            add_relation(s, staff=zhangsan, member_id=member.id)
    # given a request that has claimed zhangsan's customers and not committed yet
    outcome = {}
    with session_scope(engine) as first:
        claimed = service.claim_transfers(first, handover_userid="zhangsan", takeover_userid="lisi")
        first.flush()

        def second_request():
            with session_scope(engine) as s:
                claim = service.claim_transfers(s, handover_userid="zhangsan", takeover_userid="lisi")
                outcome["new"], outcome["rows"] = claim.new_ids, [r.id for r in claim.rows]

        # when a second request claims the same customers meanwhile
        worker = threading.Thread(target=second_request)
        worker.start()
        _wait_until_blocked(engine, "INSERT INTO transfers")
    worker.join(30)
    # then it waited for the first, found its rows open, and claimed nothing: nothing would be sent twice
    assert len(claimed.new_ids) == 3
    assert outcome == {"new": [], "rows": claimed.new_ids}
