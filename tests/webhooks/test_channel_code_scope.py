"""Channel codes a store manager makes: their own store, its staff, and tags that are WeCom corp tags already."""
from __future__ import annotations

import pytest

from config.database import session_scope
from membership.tags import ensure_tag
from tests.webhooks.conftest import ADMIN


@pytest.fixture
def stores(client):
    """Stores S001 and S002, zhangsan in S001, lisi in S002, a linked corp tag 到店, and S001's manager token."""
    for code in ("S001", "S002"):
        client.post("/api/v1/stores", json={"code": code, "name": code}, headers=ADMIN)
    for userid, store in (("zhangsan", "S001"), ("lisi", "S002")):
        client.post("/api/v1/staff", json={"userid": userid, "name": userid, "store": store}, headers=ADMIN)
    with session_scope() as s:
        ensure_tag(s, "到店", "渠道", wecom_tag_id="etDAODIAN")
        ensure_tag(s, "本地", "")  # in the catalogue, but not a WeCom corp tag
    r = client.post("/api/v1/tokens", json={"name": "mgr", "role": "store_manager", "store": "S001"}, headers=ADMIN)
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _code(staff, tags=(), store="S001"):
    return {"name": "门口", "store": store, "staff": list(staff), "tags": list(tags)}


@pytest.fixture
def marketer(client, stores):
    r = client.post("/api/v1/tokens", json={"name": "m", "role": "marketer"}, headers=ADMIN)
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.mark.parametrize(("body", "why"), [
    (_code(["lisi"]), "lisi"),  # another store's staff member
    (_code(["zhangsan", "lisi"]), "lisi"),
    (_code(["zhangsan"], store="S002"), "own store"),
    (_code(["zhangsan"], tags=["新渠道"]), "新渠道"),  # would create a WeCom corp tag
    (_code(["zhangsan"], tags=["到店", "本地"]), "本地"),
])
def test_a_store_managers_code_outside_their_store_or_with_a_new_tag_is_403(client, fake_wecom, stores, marketer,
                                                                            body, why):
    # when S001's manager asks for the code
    r = client.post("/api/v1/channel-codes", json=body, headers=stores)
    # then it is refused with the reason, and nothing was created in WeCom
    assert r.status_code == 403, r.text
    assert why in r.json()["detail"]
    assert fake_wecom.named("add_contact_way") == [] and fake_wecom.named("add_corp_tag") == []
    # while their own staff with an existing corp tag is fine, and so is the refused body for a marketer
    own = client.post("/api/v1/channel-codes", json=_code(["zhangsan"], tags=["到店"]), headers=stores)
    assert own.status_code == 201, own.text
    assert fake_wecom.named("add_corp_tag") == []
    assert client.post("/api/v1/channel-codes", json=body, headers=marketer).status_code == 201
    assert len(fake_wecom.named("add_contact_way")) == 2
