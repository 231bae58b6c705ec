"""Shared pieces of the transfer tests: a store chain in WeCom (the sandbox) and in Siyu, and how to read it back."""
from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.credentials import SANDBOX_CORP_ID
from config.database import session_scope
from config.queue import in_process_runner
from membership.identity import IdentityIn, bind, resolve
from membership.models import Relation, TimelineEvent
from membership.service import add_relation, find_staff
from tests.conftest import ADMIN_TOKEN
from tests.webhooks.conftest import wecom_creds, wecom_post

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CUSTOMERS = ("wmCUST0001", "wmCUST0002", "wmCUST0003")
STAFF = {"zhangsan": ("S001", "staff"), "lisi": ("S001", "staff"), "wangwu": ("S001", "store_manager"),
         "zhaoliu": ("S002", "store_manager"), "qianqi": ("S002", "staff")}


@pytest.fixture
def client(sandbox):
    """A Siyu app on the test settings, its WeCom client pointing at the served sandbox."""
    from siyu.app import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def chain(sandbox, client):
    """Stores S001 (zhangsan with three customers, lisi, manager wangwu) and S002 (manager zhaoliu, qianqi)."""
    for code in ("S001", "S002"):
        assert client.post("/api/v1/stores", json={"code": code, "name": code}, headers=ADMIN).status_code == 201
    for userid, (store, role) in STAFF.items():
        sandbox.add_staff(userid)
        r = client.post("/api/v1/staff", json={"userid": userid, "name": userid, "store": store, "role": role},
                        headers=ADMIN)
        assert r.status_code == 201, r.text
    with session_scope() as s:
        zhangsan = find_staff(s, "zhangsan")
        for i, ext in enumerate(CUSTOMERS):
            sandbox.add_external_contact("zhangsan", external_userid=ext, name=f"客户{i}", state="STORE1")
            member = bind(s, [IdentityIn("wecom_external", ext, SANDBOX_CORP_ID)], name=f"客户{i}").member
            add_relation(s, staff=zhangsan, member_id=member.id, state="STORE1")
    return sandbox


def token(client, role: str, store: str | None = None, staff: str | None = None) -> dict:
    """Authorization headers of a new token for `role` (in `store`, as `staff`)."""
    r = client.post("/api/v1/tokens", json={"name": f"{role}-{store}", "role": role, "store": store, "staff": staff},
                    headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def deliver(client, callbacks: list[str]) -> None:
    """POST WeCom's callbacks to Siyu, encrypted and signed, and wait until they are handled."""
    for plaintext in callbacks:
        assert wecom_post(client, wecom_creds(), plaintext).status_code == 200
    assert in_process_runner().drain(60), "callbacks were not handled"


def relations() -> dict[str, set[tuple[str, str]]]:
    """external_userid -> {(staff userid, status)}."""
    out: dict[str, set] = {}
    with session_scope() as s:
        for ext in CUSTOMERS:
            member = resolve(s, IdentityIn("wecom_external", ext, SANDBOX_CORP_ID))
            out[ext] = {(r.staff.userid, r.status) for r in s.scalars(select(Relation).where(
                Relation.member_id == member.id))}
    return out


def relation_state(ext: str, userid: str) -> str | None:
    """The `state` (channel code) the relation of this customer and staff member carries."""
    with session_scope() as s:
        member = resolve(s, IdentityIn("wecom_external", ext, SANDBOX_CORP_ID))
        staff = find_staff(s, userid)
        return s.scalar(select(Relation.state).where(Relation.member_id == member.id, Relation.staff_id == staff.id))


def contact_events(ext: str) -> list[tuple[str, dict]]:
    """(type, data) of a customer's contact.* timeline events, oldest first."""
    with session_scope() as s:
        member = resolve(s, IdentityIn("wecom_external", ext, SANDBOX_CORP_ID))
        rows = s.scalars(select(TimelineEvent).where(TimelineEvent.member_id == member.id,
                                                     TimelineEvent.type.like("contact.%")).order_by(TimelineEvent.id))
        return [(e.type, dict(e.data)) for e in rows]


def snapshot() -> tuple:
    """Everything a transfer writes: relations, contact events per customer, transfer rows."""
    from webhooks.transfers.models import Transfer

    with session_scope() as s:
        transfers = sorted((t.external_userid, t.status, t.errcode) for t in s.scalars(select(Transfer)))
    events = {ext: Counter(t for t, _ in contact_events(ext)) for ext in CUSTOMERS}
    return relations(), events, transfers
