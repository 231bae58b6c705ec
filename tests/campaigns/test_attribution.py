"""Holdout and attribution: a hashed share of the audience is held out at planning (the same on a re-plan), never
sent, and the stats set the goal rate of the held-out members beside the treated ones, per store and staff."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select

from campaigns import fanout, ledger, stats
from campaigns.models import Campaign, CampaignRun, CampaignStep
from config.database import session_scope
from membership import timeline
from tests.campaigns.conftest import build_world
from tests.campaigns.test_mass_message import launch_twice, recipients, stats as api_stats

GOAL = {"event": "booking.created", "within_days": 7}


def _held(run_id: int) -> set[int]:
    with session_scope() as s:
        return set(s.scalars(select(CampaignStep.member_id).where(CampaignStep.run_id == run_id,
                                                                  CampaignStep.reason == "holdout")))


def test_a_holdout_is_a_hash_of_campaign_and_member_never_sent_and_the_same_on_a_replan(sandbox, manual_clock):
    # given a campaign over 400 members holding out 20 %
    world = build_world(sandbox, members=400, stores=2, staff=4)
    cid, runs = launch_twice(world.segment_id, holdout={"percent": 20})
    # when it is planned (in batches) and fanned out
    ledger.plan(runs[0], now=manual_clock(), batch=64)
    fanout.run_job(runs[0])
    # then the held-out members are those whose hash bucket falls in the first 20 % (as in Python)
    held = _held(runs[0])
    assert held == {m for m in world.members if ledger.holdout_bucket(cid, m) < 2000}
    assert 40 <= len(held) <= 120  # about a fifth: neither nobody nor everybody
    # and none of them was sent to, everyone else exactly once
    sent = sorted(e for es in recipients(sandbox).values() for e in es)
    assert sent == sorted(world.ext[m] for m in world.members if m not in held)
    # and a second run of the campaign holds out exactly the same members
    with session_scope() as s:
        again = CampaignRun(campaign_id=cid, key="again", status="sending", due_at=manual_clock())
        s.add(again)
        s.flush()
        again_id = again.id
    ledger.plan(again_id, now=manual_clock(), batch=1000)
    assert _held(again_id) == held
    body = api_stats(cid)["stats"]
    assert body["skipped"]["holdout"] == 2 * len(held)


def test_stats_show_the_holdouts_goal_rate_beside_the_treated_and_the_lift(sandbox, manual_clock):
    # given a sent campaign with a 30 % holdout and a booking goal within 7 days
    world = build_world(sandbox, members=120, stores=3, staff=3)
    cid, runs = launch_twice(world.segment_id, holdout={"percent": 30}, goal=GOAL)
    fanout.run_job(runs[0])
    held = _held(runs[0])
    treated = [m for m in world.members if m not in held]
    held_list = sorted(held)
    touch = manual_clock()
    # when treated members book (within the window, too late, or before their touch) and some held-out too
    within, late, early = treated[:12], treated[12:15], treated[15:17]
    held_in, held_late = held_list[:3], held_list[3:5]
    with session_scope() as s:
        for m in within + held_in:
            timeline.record_event(s, m, "booking.created", {}, at=touch + timedelta(days=2))
        for m in late + held_late:
            timeline.record_event(s, m, "booking.created", {}, at=touch + timedelta(days=8))
        for m in early:
            timeline.record_event(s, m, "booking.created", {}, at=touch - timedelta(hours=1))
        timeline.record_event(s, within[0], "booking.created", {}, at=touch + timedelta(days=3))  # counted once
    # then the treatment converted 12 of its members and the holdout 3 of its own, and the lift is the difference
    body = api_stats(cid)["stats"]
    t_rate, h_rate = round(12 / len(treated), 4), round(3 / len(held), 4)
    assert body["treatment"] == {"members": len(treated), "converted": 12, "rate": t_rate}
    assert body["holdout"] == {"members": len(held), "converted": 3, "rate": h_rate}
    assert body["converted"] == 12
    assert body["lift"] == round(t_rate - h_rate, 4)
    # and per store and per staff member the groups add up to the totals
    for section in ("per_store", "per_staff"):
        parts = body[section].values()
        for group in ("treatment", "holdout"):
            assert sum(p[group]["members"] for p in parts) == body[group]["members"]
            assert sum(p[group]["converted"] for p in parts) == body[group]["converted"]
    staff_of = {m: world.owner[m] for m in world.members}
    u = staff_of[within[0]]
    mine = body["per_staff"][u]
    assert mine["treatment"]["converted"] == sum(1 for m in within if staff_of[m] == u)
    assert mine["holdout"]["members"] == sum(1 for m in held if staff_of[m] == u)


def test_stats_take_the_same_few_queries_whatever_the_audience(sandbox, manual_clock):
    # given two sent campaigns with goals, one over 10 members, one over 200
    world = build_world(sandbox, members=200, stores=3, staff=5)
    counts = []
    for size in (10, 200):
        with session_scope() as s:
            from segments.models import Segment, SegmentMembership

            seg = Segment(name=f"前{size}", definition={"channel": "wecom"}, depends_on=[])
            s.add(seg)
            s.flush()
            s.add_all([SegmentMembership(segment_id=seg.id, member_id=m) for m in world.members[:size]])
            seg_id = seg.id
        cid, runs = launch_twice(seg_id, holdout={"percent": 10}, goal=GOAL)
        fanout.run_job(runs[0])
        # when the stats are read, counting the statements
        with session_scope() as s:
            campaign = s.get(Campaign, cid)
            statements: list[str] = []
            engine = s.get_bind()

            def listener(*a, statements=statements, **k):
                statements.append(a[2])
            event.listen(engine, "before_cursor_execute", listener)
            try:
                got = stats.campaign_stats(s, campaign)
            finally:
                event.remove(engine, "before_cursor_execute", listener)
        assert got["targeted"] == size
        counts.append(len([q for q in statements if q.lstrip().upper().startswith("SELECT")]))
    # then the number of queries does not grow with the audience, stores or staff
    assert counts[0] == counts[1] <= 4


def test_the_holdout_is_drawn_among_members_who_could_be_reached(sandbox, manual_clock):
    from membership.models import Identity

    # given 200 members, a fifth of whom Siyu cannot reach on WeCom (no contact), some of them in the holdout bucket
    world = build_world(sandbox, members=200, stores=1, staff=2)
    cid, runs = launch_twice(world.segment_id, holdout={"percent": 25})
    unreachable = set(world.members[::5])
    in_bucket = {m for m in world.members if ledger.holdout_bucket(cid, m) < 2500}
    assert unreachable & in_bucket and in_bucket - unreachable  # the case this test is about
    with session_scope() as s:
        s.execute(Identity.__table__.delete().where(Identity.member_id.in_(unreachable)))
    # when it is planned and sent
    ledger.plan(runs[0], now=manual_clock(), batch=64)
    fanout.run_job(runs[0])
    # then a member who could not be reached is skipped for that, whatever their bucket, and only reachable
    # members are held out: the holdout's goal rate is of members like the treated ones
    with session_scope() as s:
        reasons = dict(s.execute(select(CampaignStep.member_id, CampaignStep.reason)
                                 .where(CampaignStep.run_id == runs[0])).all())
    assert {m for m in unreachable if reasons[m] != "no_wecom_contact"} == set()
    assert _held(runs[0]) == in_bucket - unreachable
    assert api_stats(cid)["stats"]["holdout"]["members"] == len(in_bucket - unreachable)
