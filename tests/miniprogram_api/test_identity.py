"""Logging in and binding a phone join identities into one member by DESIGN's rules."""
from __future__ import annotations

from sqlalchemy import select

from config.database import session_scope
from membership.identity import IdentityIn, bind
from membership.models import Identity, Member, MergeReview, TimelineEvent
from membership.tags import ensure_tag, tag_member
from tests.campaigns.bookings.helpers import ADMIN, login


def _identities(member_id: int) -> set[tuple[str, str]]:
    with session_scope() as s:
        return {(i.type, i.value) for i in s.scalars(select(Identity).where(Identity.member_id == member_id))}


def test_login_binds_openid_and_unionid_into_the_member_already_holding_the_unionid(client, sandbox):
    # given an official-account follower known by unionid
    with session_scope() as s:
        follower = bind(s, [IdentityIn("oa_openid", "oa-1", "wxoa"), IdentityIn("unionid", "u-1")]).member.id
    # when they log in to the mini-program with the same unionid
    _, member_id, openid = login(client, sandbox, unionid="u-1")
    # then it is the same member, now holding the mini-program openid, with an mp.session event
    assert member_id == follower
    assert ("mp_openid", openid) in _identities(member_id)
    with session_scope() as s:
        types = list(s.scalars(select(TimelineEvent.type).where(TimelineEvent.member_id == member_id)))
    assert "mp.session" in types


def test_a_verified_phone_merges_the_older_member_holding_it_and_the_token_follows(client, sandbox):
    # given a WeCom customer with a verified phone, and a new mini-program user
    with session_scope() as s:
        older = bind(s, [IdentityIn("wecom_external", "wm-1", "corp"),
                         IdentityIn("phone", "13800138000", verified=True)], name="老客户").member.id
    auth, newer, openid = login(client, sandbox)
    assert newer != older
    # when the mini-program user binds that phone
    r = client.post("/mp/v1/phone", json={"code": sandbox.new_phone_code("13800138000")}, headers=auth)
    # then the answer is the masked phone only, and the newer member was merged into the older
    assert r.status_code == 200 and r.json() == {"phone_masked": "+86138****8000"}
    with session_scope() as s:
        assert s.get(Member, newer).merged_into_id == older
    assert {("mp_openid", openid), ("wecom_external", "wm-1"), ("phone", "+8613800138000")} <= _identities(older)
    # and the same token now acts for the surviving member
    card = client.get("/mp/v1/me", headers=auth).json()
    assert card["member_id"] == older and card["name"] == "老客户" and card["phone_masked"] == "+86138****8000"


def test_two_different_verified_phones_are_never_merged_automatically(client, sandbox):
    with session_scope() as s:
        bind(s, [IdentityIn("wecom_external", "wm-1", "corp"), IdentityIn("phone", "13800138000", verified=True)])
    auth, me, _ = login(client, sandbox)
    assert client.post("/mp/v1/phone", json={"code": sandbox.new_phone_code("13900139000")},
                       headers=auth).status_code == 200
    # when the consumer then binds the other member's phone too, then 409 and a review row, no merge
    r = client.post("/mp/v1/phone", json={"code": sandbox.new_phone_code("13800138000")}, headers=auth)
    assert r.status_code == 409
    with session_scope() as s:
        assert s.get(Member, me).merged_into_id is None
        assert s.scalar(select(MergeReview.id)) is not None


def test_a_reused_phone_code_is_refused_and_no_full_phone_is_answered(client, sandbox):
    auth, _, _ = login(client, sandbox)
    code = sandbox.new_phone_code("13912345678")
    assert "13912345678" not in client.post("/mp/v1/phone", json={"code": code}, headers=auth).text
    r = client.post("/mp/v1/phone", json={"code": code}, headers=auth)
    assert r.status_code == 422 and "40029" in r.json()["detail"]
    assert client.post("/mp/v1/phone", json={"code": "x"}).status_code == 401


def test_the_card_shows_only_the_tags_marked_visible_to_the_member(client, sandbox):
    auth, member_id, _ = login(client, sandbox)
    with session_scope() as s:
        tag_member(s, member_id, ensure_tag(s, "高价值"))  # internal: never shown to the consumer
    r = client.post(f"/api/v1/members/{member_id}/tags", json={"name": "金卡会员", "visible_to_member": True},
                    headers=ADMIN)
    assert r.status_code == 201, r.text
    card = client.get("/mp/v1/me", headers=auth).json()
    assert card["tags"] == ["金卡会员"] and card["bookings"] == [] and card["orders"] == []


def test_orders_on_the_card_come_from_registered_sources(client, sandbox):
    from miniprogram_api import cards

    auth, member_id, _ = login(client, sandbox)

    def source(session, mid):
        return [{"out_trade_no": f"T{mid}", "status": "paid"}]

    cards.on_orders(source)
    try:
        assert client.get("/mp/v1/me", headers=auth).json()["orders"] == [{"out_trade_no": f"T{member_id}",
                                                                           "status": "paid"}]
    finally:
        cards.ORDER_SOURCES.remove(source)
