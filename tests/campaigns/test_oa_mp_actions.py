"""oa_template, mp_subscribe and the invites end to end against the sandbox: one message per member even when
launched twice, members without the channel skipped and counted, grants consumed once, results written back."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from bot.credentials import mp_credentials, oa_credentials
from bot.sandbox import events
from campaigns import clock, fanout
from campaigns.claims import claim_next
from campaigns.ledger import plan
from campaigns.ticks import tick
from campaigns.models import CampaignStep, MassQuota
from config.database import session_scope
from config.queue import recording
from config.settings import get_settings
from config.types import utcnow
from membership import consents
from campaigns.groupbuy.models import Order
from membership.models import Identity, Staff, SubscribeGrant, TimelineEvent
from membership.timeline import record_event
from miniprogram_api.auth import issue_token
from siyu.app import create_app
from tests.campaigns.conftest import MORNING, build_world
from tests.campaigns.test_api_and_races import ON_POSTGRESQL, fan_out_together
from tests.campaigns.test_mass_message import ADMIN
from tests.webhooks.conftest import handle

OA_TPL = "TPL-OA-VISIT"
MP_TPL = "TPL-MP-OFFER"
OA_ACTION = {"type": "oa_template", "template_id": OA_TPL,
             "data": {"thing1": {"value": "会员回访"}, "time2": {"value": "2026-03-10 10:00"}},
             "url": "https://example.com/visit"}
MP_ACTION = {"type": "mp_subscribe", "template_id": MP_TPL, "page": "pages/index/index?from=campaign",
             "data": {"thing1": {"value": "春季焕新"}, "amount2": {"value": "99元"}}}


def create(client: TestClient, action: dict, segment_id: int, **extra):
    return client.post("/api/v1/campaigns", headers=ADMIN,
                       json={"name": "回访", "audience": {"segment_id": segment_id}, "action": action, **extra})


def launch_twice_and_run(action: dict, segment_id: int, **extra) -> int:
    """Create a campaign, launch it twice, run every queued run job twice; the campaign's id."""
    with recording() as jobs, TestClient(create_app()) as client:
        answer = create(client, action, segment_id, **extra)
        assert answer.status_code == 201, answer.text
        cid = answer.json()["id"]
        for _ in range(2):
            assert client.post(f"/api/v1/campaigns/{cid}/launch", headers=ADMIN).status_code == 200
    runs = [j.args[0] for j in jobs if j.func is fanout.run_job]
    for run_id in runs + runs:
        fanout.run_job(run_id)
    return cid


def stats(cid: int) -> dict:
    with TestClient(create_app()) as client:
        return client.get(f"/api/v1/campaigns/{cid}", headers=ADMIN).json()


def follow_oa(sandbox, members: list[int]) -> dict[int, str]:
    """These members follow the official account (in the sandbox and with an OA openid in Siyu)."""
    app = oa_credentials(get_settings()).app_id
    openids = {m: sandbox.add_oa_follower(f"oOA{m:06d}") for m in members}
    with session_scope() as s:
        s.execute(insert(Identity), [{"member_id": m, "type": "oa_openid", "scope": app, "value": o, "verified": True}
                                     for m, o in openids.items()])
    return openids


def use_mp(sandbox, members: list[int], granted: list[int] = ()) -> dict[int, str]:
    """These members use the mini-program; `granted` accepted one message of MP_TPL (Siyu and WeChat know it)."""
    app = mp_credentials(get_settings()).app_id
    openids = {m: sandbox.add_mp_user(f"oMP{m:06d}") for m in members}
    with session_scope() as s:
        s.execute(insert(Identity), [{"member_id": m, "type": "mp_openid", "scope": app, "value": o, "verified": True}
                                     for m, o in openids.items()])
        for m in granted:
            consents.grant(s, member_id=m, template_id=MP_TPL)
    for m in granted:
        sandbox.grant_subscribe(openids[m], MP_TPL)
    return openids


def timeline(kind: str) -> Counter:
    with session_scope() as s:
        return Counter(s.scalars(select(TimelineEvent.member_id).where(TimelineEvent.type == kind)))


def test_oa_template_goes_once_to_each_follower_and_tencent_s_reports_come_back(sandbox, manual_clock):
    # given 30 members across 3 stores, 20 of them OA followers: one unfollowed (Siyu got the event), one unfollowed
    # while Siyu missed it, one unfollowed and followed again, one blocks template messages
    world = build_world(sandbox, members=30, stores=3, staff=6)
    sandbox.add_oa_template(OA_TPL, "thing1", "time2")
    followers = [m for m in world.members if m % 3]
    openids = follow_oa(sandbox, followers)
    gone, stale, back, blocking = followers[:4]
    for m in (gone, stale):
        sandbox.unfollow_oa(openids[m])
    with session_scope() as s:
        record_event(s, gone, "oa.unsubscribed", {}, at=MORNING - timedelta(days=1))
        record_event(s, back, "oa.unsubscribed", {}, at=MORNING - timedelta(days=2))
        record_event(s, back, "oa.subscribed", {"scene": None}, at=MORNING - timedelta(days=1))
    sandbox.oa_blocked.add(openids[blocking])
    # when a template campaign is launched twice by mistake
    cid = launch_twice_and_run(OA_ACTION, world.segment_id)
    # then every current follower got exactly one template message, the others none
    sent = Counter(m["touser"] for m in sandbox.oa_template_sends)
    assert sent == Counter({openids[m]: 1 for m in followers if m not in (gone, stale)})
    assert all(m["template_id"] == OA_TPL and m["url"] == OA_ACTION["url"] for m in sandbox.oa_template_sends)
    body = stats(cid)
    assert body["status"] == "completed"
    st = body["stats"]
    assert st["targeted"] == 30 and st["skipped"] == {"no_oa_follower": 10, "oa_unfollowed": 1}
    assert st["sent"] == 18 and st["failed"] == 1 and st["unknown"] == 0
    assert sum(v["targeted"] for v in st["per_store"].values()) == 30
    with session_scope() as s:  # an OA message takes nothing of WeCom's mass-message quota
        assert s.scalar(select(func.coalesce(func.sum(MassQuota.used), 0))) == 0
        assert s.scalar(select(CampaignStep.reason).where(CampaignStep.member_id == stale)) == "not_subscribed"
    # when Tencent reports each message's fate (TEMPLATESENDJOBFINISH through the OA intake), some twice
    oa_app = oa_credentials(get_settings()).app_id
    reports = sandbox.take_template_results()
    assert len(reports) == 18
    for openid, msgid, status in reports + reports[:3]:
        handle("official_account", events.oa_template_finish(openid, msgid, status, to=oa_app))
    # then the delivered have campaign.sent on their timeline once, and the blocking one failed
    assert timeline("campaign.sent") == Counter({m: 1 for m in followers if m not in (gone, stale, blocking)})
    st = stats(cid)["stats"]
    assert st["delivered"] == 17 and st["failed"] == 2
    with session_scope() as s:
        assert s.scalar(select(CampaignStep.reason).where(CampaignStep.member_id == blocking)) == "user_block"


def test_an_interrupted_template_send_is_unknown_and_never_repeated_and_a_rate_limit_only_delays(
        sandbox, manual_clock):
    # given 6 followers, and WeChat refusing one call for its rate limit past the client's own retries
    world = build_world(sandbox, members=6, stores=1, staff=2)
    sandbox.add_oa_template(OA_TPL)
    openids = follow_oa(sandbox, world.members)
    sandbox.inject("cgi-bin/message/template/send", *[45009] * 4)
    with recording() as jobs, TestClient(create_app()) as client:
        cid = create(client, OA_ACTION, world.segment_id).json()["id"]
        client.post(f"/api/v1/campaigns/{cid}/launch", headers=ADMIN)
    run_id = next(j.args[0] for j in jobs if j.func is fanout.run_job)
    # when a worker plans the run, claims one member's send and dies before making or recording the call
    plan(run_id, now=clock.now())
    with session_scope() as s:
        lost = claim_next(s, run_id=run_id, now=clock.now())
    assert lost.kind == "call"
    # and the run goes on after the lost claim's lease expired (one member is refused for the rate limit)
    manual_clock.advance(minutes=10)
    fanout.run_job(run_id)
    assert len(sandbox.oa_template_sends) == 4
    # and once more after the rate limit passed
    manual_clock.advance(minutes=2)
    fanout.run_job(run_id)
    # then every member but the interrupted one got one message, and the interrupted one none (not retried)
    sent = Counter(m["touser"] for m in sandbox.oa_template_sends)
    assert sent == Counter({o: 1 for o in openids.values() if o != lost.recipients[0]})
    st = stats(cid)["stats"]
    assert st["unknown"] == 1 and st["sent"] == 5 and st["failed"] == 0 and st["skipped"] == {}
    with session_scope() as s:
        reason = s.scalar(select(CampaignStep.reason).where(CampaignStep.send_id == lost.send_id))
    assert reason == "outcome_unknown"


def test_a_template_tencent_does_not_know_fails_the_run_after_one_call(sandbox, manual_clock):
    # given 12 followers and a template the official account never added
    world = build_world(sandbox, members=12, stores=2, staff=2)
    follow_oa(sandbox, world.members)
    # when the campaign runs
    cid = launch_twice_and_run(OA_ACTION, world.segment_id)
    # then Tencent heard one call (40037), and every member's row failed with it
    assert sandbox.calls["cgi-bin/message/template/send"] == 1 and sandbox.oa_template_sends == []
    body = stats(cid)
    assert body["status"] == "completed"
    assert body["stats"]["failed"] == 12 and body["stats"]["sent"] == 0
    with session_scope() as s:
        assert set(s.scalars(select(CampaignStep.reason))) == {"invalid_template"}


def test_mp_subscribe_goes_only_to_granted_members_and_each_grant_is_spent_once(sandbox, manual_clock):
    # given 24 members across 3 stores: 16 use the mini-program, 10 of them granted one message of the template
    world = build_world(sandbox, members=24, stores=3, staff=3)
    users = world.members[:16]
    granted = users[:10]
    openids = use_mp(sandbox, users, granted)
    refused = granted[0]  # Siyu recorded a grant WeChat no longer has: WeChat answers 43101
    sandbox.mp_grants.pop((openids[refused], MP_TPL))
    # when a subscribe campaign is launched twice
    cid = launch_twice_and_run(MP_ACTION, world.segment_id)
    # then each granted member got one message (the page as given), the rest were skipped and counted
    sent = Counter(m["touser"] for m in sandbox.mp_subscribe_sends)
    assert sent == Counter({openids[m]: 1 for m in granted if m != refused})
    assert {m["page"] for m in sandbox.mp_subscribe_sends} == {MP_ACTION["page"]}
    st = stats(cid)["stats"]
    assert st["skipped"] == {"no_mp_openid": 8, "no_subscribe_grant": 6}
    assert st["sent"] == 9 and st["delivered"] == 9 and st["failed"] == 1
    assert timeline("campaign.sent") == Counter({m: 1 for m in granted if m != refused})
    with session_scope() as s:  # every grant is spent, the refused one too (WeChat said there was none)
        assert set(s.scalars(select(SubscribeGrant.remaining))) == {0}
        assert s.scalar(select(CampaignStep.reason).where(CampaignStep.member_id == refused)) == "user_refused"
    # when a second campaign with the same template runs
    again = launch_twice_and_run(MP_ACTION, world.segment_id)
    # then no one is sent again: their grants were consumed
    assert len(sandbox.mp_subscribe_sends) == 9
    assert stats(again)["stats"]["skipped"] == {"no_mp_openid": 8, "no_subscribe_grant": 16}


def _offer(client: TestClient) -> int:
    now = utcnow()
    body = {"name": "双人洗牙套餐", "price_fen": 9900, "original_price_fen": 19900, "group_size": 3,
            "time_limit_minutes": 60, "stock": 30, "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(), "stores": []}
    answer = client.post("/api/v1/groupbuy/offers", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_a_groupbuy_invite_by_mass_message_carries_the_offer_and_its_sender_and_credits_them(sandbox, manual_clock):
    # given customers of 4 staff members, and an offer
    world = build_world(sandbox, members=20, stores=2, staff=4)
    with TestClient(create_app()) as client:
        offer_id = _offer(client)
    action = {"type": "groupbuy_invite", "offer_id": offer_id, "via": "wecom_mass_message",
              "text": "拼团啦", "pic_media_id": "MEDIA_COVER"}
    # when the invite campaign is launched twice
    cid = launch_twice_and_run(action, world.segment_id)
    # then each staff member got one mass message whose mini-program page is the offer with them as ref
    assert sorted(u for t in sandbox.msg_tasks.values() for u in t["senders"]) == sorted(world.staff)
    for task in sandbox.msg_tasks.values():
        [sender] = task["senders"]
        [card] = task["attachments"]
        page = urlsplit(card["miniprogram"]["page"])
        assert page.path == "pages/groupbuy/offer.html"
        assert parse_qs(page.query) == {"id": [str(offer_id)], "ref": [sender]}
        assert card["miniprogram"]["title"] == "双人洗牙套餐" and task["text"] == {"content": "拼团啦"}
    assert stats(cid)["stats"]["sent"] == 20
    # and when the staff members confirm in WeCom, the results are polled as a mass message's are
    for msgid, task in sandbox.msg_tasks.items():
        for userid in task["senders"]:
            sandbox.confirm_msg_task(msgid, userid)
    manual_clock.advance(minutes=10)
    with recording() as jobs:
        tick()
    for job in jobs:
        if job.func is fanout.poll_job:
            assert job.func(*job.args) == "done"
    assert stats(cid)["stats"]["delivered"] == 20
    # when a consumer follows the page the staff member sent, opening a group with its ref
    task = next(iter(sandbox.msg_tasks.values()))
    ref = parse_qs(urlsplit(task["attachments"][0]["miniprogram"]["page"]).query)["ref"][0]
    invited = next(m for m in world.members if world.owner[m] == ref)
    use_mp(sandbox, [invited])
    headers = {"Authorization": f"Bearer {issue_token(invited)}"}
    with TestClient(create_app()) as client:
        opened = client.post(f"/mp/v1/groupbuy/offers/{offer_id}/groups", json={"ref": ref}, headers=headers)
    assert opened.status_code == 201, opened.text
    # then the order is credited to that staff member
    with session_scope() as s:
        credited = s.scalar(select(Staff.userid).join(Order, Order.staff_id == Staff.id)
                            .where(Order.out_trade_no == opened.json()["order"]["out_trade_no"]))
    assert credited == ref


def test_a_booking_invite_by_subscribe_message_carries_the_service_and_the_owner_as_ref(sandbox, manual_clock):
    # given a service at the first store, and 9 mini-program users who granted the template
    world = build_world(sandbox, members=9, stores=3, staff=3)
    openids = use_mp(sandbox, world.members, world.members)
    with TestClient(create_app()) as client:
        r = client.post("/api/v1/services", headers=ADMIN, json={"code": "eye-test", "name": "验光",
                                                                 "duration_minutes": 30, "price_fen": 0,
                                                                 "stores": ["S001"]})
        assert r.status_code == 201, r.text
    action = {"type": "booking_invite", "service": "eye-test", "store": "S001", "via": "mp_subscribe",
              "template_id": MP_TPL, "data": {"thing1": {"value": "验光预约"}}}
    # when it is launched twice
    cid = launch_twice_and_run(action, world.segment_id)
    # then each member got one message opening the service, with their owning staff member as ref
    by_openid = {m["touser"]: m for m in sandbox.mp_subscribe_sends}
    assert sorted(by_openid) == sorted(openids.values()) and len(sandbox.mp_subscribe_sends) == 9
    for m in world.members:
        page = urlsplit(by_openid[openids[m]]["page"])
        assert page.path == "pages/booking/service"
        assert parse_qs(page.query) == {"service": ["eye-test"], "store": ["S001"], "ref": [world.owner[m]]}
    st = stats(cid)["stats"]
    assert st["delivered"] == 9 and set(st["per_staff"]) == set(world.staff)


@pytest.mark.parametrize("action,field", [
    ({"type": "oa_template", "template_id": "T", "data": {}}, "data"),
    ({"type": "oa_template", "template_id": "T", "data": {"thing1": {"value": "字" * 21}}}, "data"),
    ({"type": "mp_subscribe", "template_id": "T", "page": "/pages/x", "data": {"thing1": {"value": "x"}}}, "page"),
    ({"type": "mp_subscribe", "template_id": "T", "page": "pages/x", "data": {"first": {"value": "x"}}}, "data"),
    ({"type": "groupbuy_invite", "offer_id": 1, "via": "wecom_mass_message"}, "pic_media_id"),
    ({"type": "groupbuy_invite", "offer_id": 1, "via": "mp_subscribe", "data": {"thing1": {"value": "x"}}},
     "template_id"),
    ({"type": "booking_invite", "service": "eye", "via": "fax"}, "action"),
    ({"type": "booking_invite", "service": "eye", "via": "wecom_staff_task"}, "due_in_hours"),
])
def test_an_invalid_action_is_422_pointing_at_the_field(settings, action, field):
    with TestClient(create_app()) as client:
        answer = create(client, action, 1)
    assert answer.status_code == 422
    assert any(field in [str(p) for p in issue["loc"]] for issue in answer.json()["detail"]), answer.json()


def test_an_invite_of_a_missing_offer_or_by_a_channel_not_built_is_422(sandbox, manual_clock):
    world = build_world(sandbox, members=2, stores=1, staff=1)
    task = {"type": "groupbuy_invite", "offer_id": 1, "via": "wecom_staff_task", "title": "邀请拼团",
            "due_in_hours": 24}
    with TestClient(create_app()) as client:
        missing = create(client, {"type": "groupbuy_invite", "offer_id": 999, "via": "mp_subscribe",
                                  "template_id": MP_TPL, "data": {"thing1": {"value": "x"}}}, world.segment_id)
        assert missing.status_code == 422 and "action.offer_id" in missing.json()["detail"]
        offer_id = _offer(client)
        answer = create(client, {**task, "offer_id": offer_id}, world.segment_id)
    from campaigns.actions import ACTIONS

    if "wecom_staff_task" in ACTIONS:  # built by now: the invite is accepted and goes through it
        assert answer.status_code == 201, answer.text
    else:
        assert answer.status_code == 422 and "not available yet" in answer.json()["detail"]


@ON_POSTGRESQL
def test_two_subscribe_campaigns_at_once_spend_each_grant_once(sandbox, manual_clock):
    # given 60 members Siyu knows granted one message of the template, and two campaigns to them, both planned
    world = build_world(sandbox, members=60, stores=2, staff=4)
    openids = use_mp(sandbox, world.members, world.members)
    for m in world.members:  # WeChat would take a second message: only Siyu's grants can stop it
        sandbox.grant_subscribe(openids[m], MP_TPL)
    with recording() as jobs, TestClient(create_app()) as client:
        for _ in range(2):
            cid = create(client, MP_ACTION, world.segment_id).json()["id"]
            client.post(f"/api/v1/campaigns/{cid}/launch", headers=ADMIN)
    runs = [j.args[0] for j in jobs if j.func is fanout.run_job]
    for run_id in runs:
        plan(run_id, now=clock.now())
    # when both fan out at the same moment, two workers each
    fan_out_together(runs)
    # then each member got one message in all: the other campaign found their grant spent and skipped them
    assert Counter(m["touser"] for m in sandbox.mp_subscribe_sends) == Counter({o: 1 for o in openids.values()})
    with session_scope() as s:
        reasons = Counter(s.scalars(select(CampaignStep.reason).where(CampaignStep.status == "skipped")))
        assert set(s.scalars(select(SubscribeGrant.remaining))) == {0}
    assert reasons == Counter({"no_subscribe_grant": 60})


def test_an_invite_by_staff_task_goes_through_the_staff_task_action_once_it_is_registered(
        sandbox, manual_clock, monkeypatch):
    # given a staff-task action registered (a stand-in recording what it is asked to send), and an offer
    from types import SimpleNamespace

    from campaigns import outcomes
    from campaigns.actions import ACTIONS

    asked = []

    def call(work):
        asked.append((work.userid, work.action))
        with session_scope() as s:
            outcomes.submitted(s, send_id=work.send_id, attempt=work.attempt, msgid=None, fail_list=[],
                               now=clock.now())
        return "submitted"

    monkeypatch.setitem(ACTIONS, "wecom_staff_task", SimpleNamespace(call=call, reconcile=call, poll=lambda i: "done"))
    world = build_world(sandbox, members=12, stores=2, staff=3)
    with TestClient(create_app()) as client:
        offer_id = _offer(client)
    action = {"type": "groupbuy_invite", "offer_id": offer_id, "via": "wecom_staff_task", "title": "邀请拼团",
              "due_in_hours": 24}
    # when the invite campaign is launched twice
    launch_twice_and_run(action, world.segment_id)
    # then each staff member's chunk went to that action once, as a task carrying the offer's page with their ref
    assert sorted(u for u, _ in asked) == sorted(world.staff)
    for userid, sent in asked:
        assert {k: sent[k] for k in ("type", "title", "due_in_hours")} == {
            "type": "wecom_staff_task", "title": "邀请拼团", "due_in_hours": 24}
        assert parse_qs(urlsplit(sent["page"]).query) == {"id": [str(offer_id)], "ref": [userid]}


def test_members_with_and_without_an_owner_planned_over_many_batches_each_get_one_send_of_their_own(
        sandbox, manual_clock):
    from membership.models import Member, Relation

    # given 30 OA followers, 10 of them with no staff member at all (no relation, no home store)
    world = build_world(sandbox, members=30, stores=3, staff=6)
    sandbox.add_oa_template(OA_TPL, "thing1", "time2")
    follow_oa(sandbox, world.members)
    ownerless = world.members[::3]
    with session_scope() as s:
        s.execute(Relation.__table__.delete().where(Relation.member_id.in_(ownerless)))
        s.execute(Member.__table__.update().where(Member.id.in_(ownerless)).values(store_id=None))
    with recording() as jobs, TestClient(create_app()) as client:
        cid = create(client, OA_ACTION, world.segment_id).json()["id"]
        client.post(f"/api/v1/campaigns/{cid}/launch", headers=ADMIN)
    run_id = next(j.args[0] for j in jobs if j.func is fanout.run_job)
    # when the run is planned four members a batch (chunk numbers must go on across batches, per owner)
    assert plan(run_id, now=clock.now(), batch=4) == 30
    # then every member has a planned step pointing at a send of its own owner (none for the ownerless)
    from campaigns.models import CampaignSend

    with session_scope() as s:
        rows = s.execute(select(CampaignStep.member_id, CampaignStep.staff_id, CampaignStep.status,
                                CampaignSend.id, CampaignSend.staff_id)
                         .join(CampaignSend, CampaignSend.id == CampaignStep.send_id, isouter=True)
                         .where(CampaignStep.run_id == run_id)).all()
        sends = s.scalar(select(func.count()).select_from(CampaignSend).where(CampaignSend.run_id == run_id))
    assert len(rows) == 30 and {r.status for r in rows} == {"planned"}
    assert all(r[3] is not None and r[4] == r[1] for r in rows)
    assert {r.member_id for r in rows if r[1] is None} == set(ownerless)
    # and one member per send (Tencent takes one openid per call), no send shared or left empty
    assert sends == 30 and len({r[3] for r in rows}) == 30
