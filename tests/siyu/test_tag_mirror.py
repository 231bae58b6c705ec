"""A tag put on in Siyu reaches WeCom: the corp tag is created once and marked on the customer (mark_tag)."""
import pytest
from fastapi.testclient import TestClient

from config.database import session_scope
from config.queue import in_process_runner
from config.settings import get_settings
from membership.identity import IdentityIn, bind
from membership.service import add_relation, create_store, upsert_staff
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _wecom_tags_of(sandbox, userid, ext) -> set[str]:
    names = {t["id"]: t["name"] for g in sandbox.tag_groups.values() for t in g["tag"]}
    return {names[t] for t in sandbox.follows[userid][ext]["tag_id"]}


def _customer_of_zhangsan(sandbox, external_userid: str) -> tuple[str, int]:
    """A customer of zhangsan's, known to WeCom and to Siyu (member, store, relation); (external_userid, member id)."""
    from bot.credentials import wecom_credentials

    corp = wecom_credentials(get_settings()).corp_id
    sandbox.add_staff("zhangsan")
    ext = sandbox.add_external_contact("zhangsan", external_userid=external_userid, name="客户")
    with session_scope() as s:
        store = create_store(s, code="S1", name="店")
        staff = upsert_staff(s, userid="zhangsan", name="张三", store_id=store.id)
        member = bind(s, [IdentityIn("wecom_external", ext, corp)], store_id=store.id).member
        add_relation(s, staff=staff, member_id=member.id)
        return ext, member.id


def test_a_tag_added_and_removed_through_the_api_is_mirrored_on_wecom(sandbox):
    from siyu.app import create_app

    # given a customer of zhangsan's, known to Siyu and to WeCom
    ext, member_id = _customer_of_zhangsan(sandbox, "wmMIRROR")
    with TestClient(create_app()) as client:
        # when a marketer tags the member in Siyu
        assert client.post(f"/api/v1/members/{member_id}/tags", json={"name": "近视"}, headers=ADMIN).status_code == 201
        assert in_process_runner().drain(30)
        # then WeCom has the corp tag and the customer carries it
        assert _wecom_tags_of(sandbox, "zhangsan", ext) == {"近视"}
        # and when it is taken off again, WeCom follows
        assert client.delete(f"/api/v1/members/{member_id}/tags/近视", headers=ADMIN).status_code == 200
        assert in_process_runner().drain(30)
    assert _wecom_tags_of(sandbox, "zhangsan", ext) == set()
    # and the corp tag was created once, not once per change
    assert sum(t["name"] == "近视" for g in sandbox.tag_groups.values() for t in g["tag"]) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_tag_is_marked_on_wecom_only_once_no_callback_batch_holds_the_customer(sandbox):
    """A batch of callbacks reads its contacts from WeCom once it holds their locks; a mark made meanwhile would
    make its read stale, and an API change sends no callback to correct it."""
    import time

    from sqlalchemy import text

    from config.database import get_engine
    from membership.service import contact_lock_key
    from siyu.app import create_app

    ext, member_id = _customer_of_zhangsan(sandbox, "wmLOCKED")
    # given a batch holding the customer's lock
    holder = get_engine().connect()
    batch = holder.begin()
    holder.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": contact_lock_key(ext)})
    try:
        with TestClient(create_app()) as client:
            # when a marketer tags the member, and the mirror job runs
            assert client.post(f"/api/v1/members/{member_id}/tags", json={"name": "近视"},
                               headers=ADMIN).status_code == 201
            time.sleep(1.0)
            # then WeCom is not marked while the batch holds the customer
            assert sandbox.calls["externalcontact/mark_tag"] == 0
            # and once the batch commits, it is
            batch.commit()
            assert in_process_runner().drain(30)
    finally:
        holder.close()
    assert _wecom_tags_of(sandbox, "zhangsan", ext) == {"近视"}
