"""Cron, `at`, quiet hours and the natural-month quota on a controllable clock in Asia/Shanghai; triggers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select

from campaigns import fanout, service, triggers
from campaigns.models import Campaign, CampaignRun, CampaignStep, MassQuota, TriggerEntry
from campaigns.schemas import CampaignIn
from campaigns.ticks import tick
from config.database import session_scope
from config.queue import recording
from membership.timeline import record_event
from tests.campaigns.conftest import TEXT, build_world

CST = timezone(timedelta(hours=8))


def create(segment_id: int | None, **fields) -> int:
    body = {"name": "定时", "action": {"type": "wecom_mass_message", "text": TEXT}, **fields}
    if segment_id:
        body["audience"] = {"segment_id": segment_id}
    with recording(), session_scope() as s:
        cid = service.create_campaign(s, spec=CampaignIn.model_validate(body)).id
        service.launch(s, campaign_id=cid)
    return cid


def ticked() -> list:
    with recording() as jobs:
        tick()
    return jobs


def runs(cid: int) -> list[tuple[str, str]]:
    with session_scope() as s:
        return [(r.key, r.status) for r in s.scalars(select(CampaignRun).where(CampaignRun.campaign_id == cid)
                                                     .order_by(CampaignRun.id))]


def test_cron_fires_on_time_in_shanghai_and_records_a_late_occurrence_as_missed(sandbox, manual_clock):
    # given a daily 10:00 campaign launched on a March evening (Shanghai time)
    world = build_world(sandbox, members=6, stores=1, staff=2)
    manual_clock.set(datetime(2026, 3, 31, 8, 0, tzinfo=CST))
    cid = create(world.segment_id, schedule={"cron": "0 10 * * *"})
    # when the scheduler ticks at 10:00:30 on the 31st
    manual_clock.set(datetime(2026, 3, 31, 10, 0, 30, tzinfo=CST))
    fired = [j for j in ticked() if j.func is fanout.run_job]
    # then one run fires, keyed by the occurrence
    assert runs(cid) == [("cron:2026-03-31T02:00:00+00:00", "sending")]
    assert len(fired) == 1
    # when the scheduler was down and ticks again at 11:00 on 1 April (an hour after that day's 10:00)
    manual_clock.set(datetime(2026, 4, 1, 11, 0, tzinfo=CST))
    ticked()
    # then that occurrence is recorded missed, not fired
    assert runs(cid)[1] == ("cron:2026-04-01T02:00:00+00:00", "missed")
    # and the next day's fires on time again; a second tick adds nothing
    manual_clock.set(datetime(2026, 4, 2, 10, 1, tzinfo=CST))
    ticked()
    ticked()
    assert [s for _, s in runs(cid)] == ["sending", "missed", "sending"]
    with session_scope() as s:
        assert s.get(Campaign, cid).status == "scheduled"


def test_an_at_run_due_in_quiet_hours_waits_past_midnight_into_the_next_month_and_its_quota(sandbox, manual_clock):
    # given a campaign at 21:30 on 31 March (inside 21:00-09:00), members at the March quota already
    world = build_world(sandbox, members=6, stores=1, staff=2)
    manual_clock.set(datetime(2026, 3, 31, 12, 0, tzinfo=CST))
    cid = create(world.segment_id, schedule={"at": "2026-03-31T21:30:00+08:00"})
    with session_scope() as s:
        s.execute(insert(MassQuota), [{"member_id": m, "month": "202603", "quota": 4, "used": 4}
                                      for m in world.members])
    # when the tick at 21:30 fires it and the fan-out runs
    manual_clock.set(datetime(2026, 3, 31, 21, 30, tzinfo=CST))
    run_id = next(j.args[0] for j in ticked() if j.func is fanout.run_job)
    with recording() as later:
        assert fanout.run_job(run_id) == "waiting"
    # then nothing is sent, and the run waits for the end of quiet hours, 09:00 on 1 April
    assert sandbox.msg_tasks == {}
    assert [j.at for j in later] == [datetime(2026, 4, 1, 9, 0, tzinfo=CST)]
    # when it runs then, the April quota applies (the March one was used up)
    manual_clock.set(datetime(2026, 4, 1, 9, 0, tzinfo=CST))
    fanout.run_job(run_id)
    with session_scope() as s:
        months = set(s.scalars(select(CampaignStep.quota_month)))
        skipped = s.scalars(select(CampaignStep).where(CampaignStep.status == "skipped")).all()
        status = s.get(Campaign, cid).status
    assert months == {"202604"} and skipped == []
    assert sum(len(t["senders"]) for t in sandbox.msg_tasks.values()) == 2
    assert status == "completed"


def test_an_at_run_found_hours_late_is_missed(sandbox, manual_clock):
    # given an `at` campaign whose time passed while no scheduler ran
    world = build_world(sandbox, members=3, stores=1, staff=1)
    manual_clock.set(datetime(2026, 3, 10, 8, 0, tzinfo=CST))
    cid = create(world.segment_id, schedule={"at": "2026-03-10T10:00:00+08:00"})
    # when the first tick comes at 14:00
    manual_clock.set(datetime(2026, 3, 10, 14, 0, tzinfo=CST))
    jobs = ticked()
    # then the run is recorded missed, nothing fires, and the campaign is over
    assert runs(cid) == [("at:2026-03-10T02:00:00+00:00", "missed")]
    assert not [j for j in jobs if j.func is fanout.run_job]
    with session_scope() as s:
        assert s.get(Campaign, cid).status == "completed"


def _booking(member_id: int, booking: int, service: str = "eye-test") -> list:
    with recording() as jobs, session_scope() as s:
        record_event(s, member_id, "booking.completed", {"booking_id": booking, "service": service},
                     dedupe_key=f"test:booking:{booking}")
    return [j for j in jobs if j.func is triggers.enter_job]


def test_a_trigger_campaign_sends_once_per_booking_after_its_delay(sandbox, manual_clock):
    # given a campaign on booking.completed (eye tests), 30 minutes later, re-entry allowed
    world = build_world(sandbox, members=4, stores=1, staff=2)
    cid = create(world.segment_id, schedule={"trigger": {"event": "booking.completed", "where": {"service": "eye-test"},
                                                         "delay_minutes": 30, "reentry": True}})
    member = world.members[0]
    # when a booking completes, and the same event is written again (a retried webhook)
    entered = _booking(member, 1) + _booking(member, 1)
    # then the member entered once, due 30 minutes later
    assert len(entered) == 1 and entered[0].at == manual_clock() + timedelta(minutes=30)
    # when the delayed job runs early it waits; at its time it sends one message to that customer
    with recording() as again:
        assert triggers.enter_job(entered[0].args[0]) == "early"
    assert again and sandbox.msg_tasks == {}
    manual_clock.advance(minutes=30)
    with recording() as started:
        triggers.enter_job(entered[0].args[0])
        triggers.enter_job(entered[0].args[0])
    for job in {j.args[0]: j for j in started}.values():
        job.func(*job.args)
        job.func(*job.args)
    tasks = list(sandbox.msg_tasks.values())
    assert [[r["external_userid"] for s in t["senders"].values() for r in s["results"]] for t in tasks] == \
        [[world.ext[member]]]
    # and a second booking sends a second time; a booking without an eye test does not enter
    second = _booking(member, 2)
    assert len(second) == 1
    assert _booking(member, 3, service="haircut") == []
    with session_scope() as s:
        keys = sorted(e.entry_key for e in s.scalars(select(TriggerEntry).where(TriggerEntry.campaign_id == cid)))
    assert len(keys) == 2  # bookings 1 and 2 (re-entry allowed: once per event)


def test_without_reentry_a_member_enters_a_trigger_campaign_once(sandbox, manual_clock):
    world = build_world(sandbox, members=2, stores=1, staff=1)
    create(world.segment_id, schedule={"trigger": {"event": "booking.completed", "delay_minutes": 30}})
    # when two bookings of one member complete
    entered = _booking(world.members[0], 1) + _booking(world.members[0], 2)
    # then they enter once
    assert len(entered) == 1
    # and a lost delayed job is found by the tick once it is due
    manual_clock.advance(minutes=31)
    assert [j.func for j in ticked()].count(triggers.enter_job) == 1
