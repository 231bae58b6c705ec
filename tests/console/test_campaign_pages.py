"""活动 pages over HTTP: the form builds the API's spec (and its 422 by the field, nothing saved), moves and their 409,
results equal to GET /api/v1/campaigns/{id}, CSV exports paged from the database, roles, and no N+1."""
from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select

from campaigns import fanout
from campaigns.models import Campaign
from config.database import engine_for, session_scope
from config.queue import recording
from console import campaign_results, csv_export
from membership import tokens
from membership.models import Identity, Role
from segments.models import Segment, SegmentMembership
from tests.campaigns import conftest as campaign_world
from tests.campaigns.conftest import TEXT, build_world
from tests.console.conftest import csrf_of, sign_in
from tests.console.test_pages import _count_statements
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
manual_clock = campaign_world.manual_clock  # the campaign tests' clock (`sandbox` is the root conftest's)


def _form(segment, **fields) -> dict:
    return {"name": "会员回访", "segment_id": str(segment), "schedule_kind": "manual",
            "action_type": "wecom_mass_message", "text": TEXT, **fields}


def _create(client, form: dict, htmx: bool = True):
    page = client.get("/console/campaigns/new")
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post("/console/campaigns", data={**form, "csrf": csrf_of(page.text)}, headers=headers,
                       follow_redirects=False)


def _campaigns() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Campaign))


def _token(role: Role, **extra) -> str:
    with session_scope() as s:
        return tokens.create_token(s, name=role.value, role=role, **extra)[1]


def test_the_form_saves_the_spec_the_api_would_and_the_api_reads_it_back(client, sandbox, manual_clock):
    world = build_world(sandbox, members=6, stores=2, staff=2)
    sign_in(client)
    # when a marketer fills every part of the form
    answer = _create(client, _form(world.segment_id, schedule_kind="cron", cron="0 10 * * MON", quiet_start="20:00",
                                   quiet_end="10:00", cap_max="2", cap_per_days="14", goal_event="booking.created",
                                   goal_days="5"))
    # then htmx is sent to the campaign's page, and the campaign is the spec the API takes
    assert answer.status_code == 204, answer.text
    cid = int(answer.headers["HX-Redirect"].rsplit("/", 1)[1])
    body = client.get(f"/api/v1/campaigns/{cid}", headers=ADMIN).json()
    assert body["status"] == "draft" and body["schedule_kind"] == "cron"
    with session_scope() as s:
        spec = s.get(Campaign, cid).spec
    assert spec == {"name": "会员回访", "audience": {"segment_id": world.segment_id},
                    "schedule": {"cron": "0 10 * * MON"}, "action": {"type": "wecom_mass_message", "text": TEXT,
                                                                      "attachments": []},
                    "policy": {"quiet_hours": {"start": "20:00", "end": "10:00"},
                               "frequency_cap": {"max": 2, "per_days": 14}},
                    "goal": {"event": "booking.created", "within_days": 5}}
    # and an `at` given in the form's local time is that instant in SIYU_TIMEZONE
    answer = _create(client, _form(world.segment_id, schedule_kind="at", at="2026-03-11T09:30"), htmx=False)
    assert answer.status_code == 303
    with session_scope() as s:
        at = s.scalars(select(Campaign).order_by(Campaign.id.desc())).first().spec["schedule"]["at"]
    assert at.startswith("2026-03-11T01:30:00")  # 09:30 in Shanghai


@pytest.mark.parametrize("fields,field,message", [
    ({"schedule_kind": "cron", "cron": "0 10 * *"}, "cron", "schedule.cron"),
    ({"text": "字" * 1400}, "text", "4000 bytes"),
    ({"text": "  "}, "text", "needs text or attachments"),
    ({"segment_id": ""}, "segment_id", "audience: required"),
    ({"segment_id": "999"}, "segment_id", "no segment 999"),
    ({"schedule_kind": "trigger", "trigger_event": "no.such"}, "trigger_event", "unknown event type"),
    ({"schedule_kind": "trigger", "trigger_event": "contact.added", "delay_minutes": "x"}, "delay_minutes",
     "whole number"),
    ({"quiet_start": "25:00", "quiet_end": "09:00"}, "quiet_start", "schedule"),
    ({"cap_max": "-1", "cap_per_days": "7"}, "cap_max", "greater than or equal to 0"),
    ({"name": ""}, "name", "at least 1 character"),
    ({"goal_event": "booking.created", "goal_days": "0"}, "goal_days", "greater than or equal to 1"),
])
def test_a_bad_field_gets_the_api_s_message_next_to_it_and_nothing_is_saved(client, sandbox, fields, field,
                                                                             message):
    world = build_world(sandbox, members=2, stores=1, staff=1)
    sign_in(client)
    form = _form(world.segment_id, **fields)
    answer = _create(client, form)
    assert answer.status_code == 422
    shown = re.search(rf'id="{field}-error">([^<]*)<', answer.text).group(1)
    if message == "schedule":  # the pattern message of QuietSpec
        message = "should match pattern"
    assert message in shown.replace("&#39;", "'"), shown
    # the API refuses the same body with the same message
    if field not in ("delay_minutes", "segment_id"):
        from console.campaign_form import spec_of
        api = client.post("/api/v1/campaigns", json=spec_of(form), headers=ADMIN)
        assert api.status_code == 422
    assert _campaigns() == 0
    # and what was typed is kept in the form
    assert 'name="text"' in answer.text


def test_only_admins_and_marketers_open_campaigns_and_an_unknown_one_is_404(client, sandbox):
    world = build_world(sandbox, members=2, stores=1, staff=1)
    manager, staff = _token(Role.store_manager, store="S001"), _token(Role.staff, staff="u000")
    for token in (manager, staff):
        client.cookies.clear()
        sign_in(client, token)
        assert client.get("/console/campaigns").status_code == 403
        assert client.get("/console/campaigns/new").status_code == 403
        assert "活动" not in re.findall(r'<nav>(.*?)</nav>', client.get("/console/members").text, re.S)[0]
        assert client.get("/console/campaigns/1/ledger.csv").status_code == 403
        page = client.get("/console/members").text
        assert client.post("/console/campaigns/1/launch", data={"csrf": csrf_of(page)}).status_code == 403
    client.cookies.clear()
    sign_in(client, _token(Role.marketer))
    assert client.get("/console/campaigns/12345").status_code == 404
    assert _create(client, _form(world.segment_id)).status_code == 204


def _move(client, cid: int, move: str):
    page = client.get(f"/console/campaigns/{cid}")
    return client.post(f"/console/campaigns/{cid}/{move}", data={"csrf": csrf_of(page.text)},
                       headers={"HX-Request": "true"})


def _launched(client, segment_id: int):
    """Create a campaign from the form, launch it, and run its run jobs: its id and the launch's answer."""
    cid = int(_create(client, _form(segment_id)).headers["HX-Redirect"].rsplit("/", 1)[1])
    with recording() as jobs:
        answer = _move(client, cid, "launch")
    for job in jobs:
        if job.func is fanout.run_job:
            fanout.run_job(*job.args)
    return cid, answer


def _cells(html: str, table: str) -> dict[str, list[str]]:
    body = re.search(rf'<table class="numbers" id="{table}">(.*?)</table>', html, re.S).group(1)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body.split("</thead>")[-1], re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        rows[cells[0]] = cells[1:]
    return rows


def test_launch_pause_resume_cancel_and_the_results_are_the_api_s_numbers(client, sandbox, manual_clock):
    world = build_world(sandbox, members=12, stores=2, staff=3)
    with session_scope() as s:  # two members without a WeCom contact are skipped, by reason
        s.execute(Identity.__table__.delete().where(Identity.member_id.in_(world.members[:2])))
    sign_in(client)
    # when the marketer launches it, then it runs and the ledger is written and sent
    cid, answer = _launched(client, world.segment_id)
    assert answer.status_code == 200 and 'id="campaign-status">进行中' in answer.text
    page = client.get(f"/console/campaigns/{cid}").text
    api = client.get(f"/api/v1/campaigns/{cid}", headers=ADMIN).json()["stats"]
    assert api["targeted"] == 12 and api["skipped"] == {"no_wecom_contact": 2} and api["sent"] == 10
    # then the totals and every store's and staff member's row are the API's numbers
    total = _cells(page, "results-total")["全部"]
    assert total[:6] == [str(api[k]) for k in ("targeted", "sent", "confirmed", "delivered", "converted", "failed")]
    assert total[-1] == "2"  # the one skip reason's column comes last; further numbers (unknown…) between
    for table, key in (("results-per_store", "per_store"), ("results-per_staff", "per_staff")):
        rows = _cells(page, table)
        assert set(rows) == set(api[key])
        for name, bucket in api[key].items():
            assert rows[name][:2] == [str(bucket["targeted"]), str(bucket["sent"])]
    assert '"kind":"funnel"' in page.replace(" ", "") or '"kind": "funnel"' in page
    # and once its one run is sent it is completed: a move out of it is the API's 409 with its message
    assert client.get(f"/api/v1/campaigns/{cid}", headers=ADMIN).json()["status"] == "completed"
    refused = _move(client, cid, "cancel")
    assert refused.status_code == 409 and "is completed: it cannot be cancelled" in refused.text
    assert _move(client, cid, "explode").status_code == 422
    # a scheduled one is paused, resumed and cancelled from its buttons, each showing the moves open next
    cron = int(_create(client, _form(world.segment_id, schedule_kind="cron", cron="0 10 * * MON"))
               .headers["HX-Redirect"].rsplit("/", 1)[1])
    for move, status, buttons in (("launch", "已排期", {"pause", "cancel"}), ("pause", "已暂停", {"resume", "cancel"}),
                                  ("resume", "已排期", {"pause", "cancel"}), ("cancel", "已取消", set())):
        answer = _move(client, cron, move)
        assert answer.status_code == 200 and f'id="campaign-status">{status}' in answer.text
        assert set(re.findall(r'id="move-(\w+)"', answer.text)) == buttons
    assert client.get(f"/api/v1/campaigns/{cron}", headers=ADMIN).json()["status"] == "cancelled"


def test_a_stats_key_the_page_does_not_know_is_shown_as_it_comes(client, sandbox, monkeypatch):
    world = build_world(sandbox, members=2, stores=1, staff=1)
    sign_in(client)
    cid = int(_create(client, _form(world.segment_id)).headers["HX-Redirect"].rsplit("/", 1)[1])
    from campaigns import stats as campaign_stats_module
    real = campaign_stats_module.campaign_stats

    def with_lift(session, campaign):
        out = real(session, campaign)
        return {**out, "holdout": 7, "lift": {"delivered": 0.25}}

    monkeypatch.setattr("console.campaigns.campaign_stats", with_lift)
    page = client.get(f"/console/campaigns/{cid}").text
    assert "对照组 (holdout)" in page
    extra = _cells(page, "results-extra")
    assert extra["提升 (lift)"] == ["已送达 (delivered): 0.25"]


def test_the_ledger_csv_streams_every_row_a_page_at_a_time_with_its_total_up_front(client, sandbox, manual_clock,
                                                                                   monkeypatch, settings):
    world = build_world(sandbox, members=23, stores=2, staff=3)
    sign_in(client)
    cid, _ = _launched(client, world.segment_id)
    monkeypatch.setattr(csv_export, "PAGE", 5)
    engine = engine_for(settings.database_url)
    pages = []

    def count(conn, cursor, statement, *_):
        if "campaign_steps" in statement and "LIMIT" in statement.upper() and "ORDER BY campaign_steps.id" in statement:
            pages.append(1)

    from sqlalchemy import event
    event.listen(engine, "before_cursor_execute", count)
    try:
        answer = client.get(f"/console/campaigns/{cid}/ledger.csv")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-total-rows"] == "23"
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0] == ["member_id", "member", "store", "staff", "status", "reason", "result", "submitted_at",
                       "confirmed_at"]
    assert sorted(int(r[0]) for r in rows[1:]) == world.members  # each member once
    assert {r[3] for r in rows[1:]} == set(world.staff[:3])
    assert len(pages) == 5  # 23 rows in pages of 5: read from the database a page at a time
    # and the results CSV holds the API's totals
    results = list(csv.reader(io.StringIO(client.get(f"/console/campaigns/{cid}/results.csv").content
                                          .decode("utf-8-sig"))))
    api = client.get(f"/api/v1/campaigns/{cid}", headers=ADMIN).json()["stats"]
    assert results[1][:4] == ["total", "", str(api["targeted"]), str(api["sent"])]
    assert {r[1] for r in results if r[0] == "store"} == set(api["per_store"])


def test_the_per_staff_table_pages_by_cursor(client, sandbox, manual_clock, monkeypatch):
    world = build_world(sandbox, members=9, stores=1, staff=3)
    sign_in(client)
    cid, _ = _launched(client, world.segment_id)
    monkeypatch.setattr(campaign_results, "TABLE_PAGE", 2)
    page = client.get(f"/console/campaigns/{cid}").text
    assert list(_cells(page, "results-per_staff")) == ["u000", "u001"]
    cursor = re.search(r"/results/per_staff\?cursor=([^\"&]+)", page).group(1)
    rest = client.get(f"/console/campaigns/{cid}/results/per_staff?cursor={cursor}", headers={"HX-Request": "true"})
    assert re.findall(r"<tr><td>(\w+)</td>", rest.text) == ["u002"] and "cursor=" not in rest.text
    assert client.get(f"/console/campaigns/{cid}/results/per_planet").status_code == 422
    assert client.get(f"/console/campaigns/{cid}/results/per_staff?cursor=%%%").status_code == 422


def test_a_cell_a_spreadsheet_would_run_is_written_as_text():
    assert csv_export._line(["=HYPERLINK(1)", "王", None, 3]) == "'=HYPERLINK(1),王,,3\r\n"


def test_the_list_pages_by_cursor_and_its_statements_do_not_grow_with_campaigns(client, sandbox, settings):
    world = build_world(sandbox, members=2, stores=1, staff=1)
    sign_in(client)
    engine = engine_for(settings.database_url)
    for _ in range(3):
        _create(client, _form(world.segment_id))
    few = _count_statements(engine, lambda: client.get("/console/campaigns"))
    for _ in range(22):
        _create(client, _form(world.segment_id))
    many = _count_statements(engine, lambda: client.get("/console/campaigns"))
    assert many == few
    first = client.get("/console/campaigns").text
    ids = [int(i) for i in re.findall(r'href="/console/campaigns/(\d+)"', first)]
    assert len(ids) == 20 and ids == sorted(ids, reverse=True)
    cursor = re.search(r"cursor=([^\"&]+)", first).group(1)
    rest = client.get(f"/console/campaigns?cursor={cursor}", headers={"HX-Request": "true"}).text
    more = [int(i) for i in re.findall(r'href="/console/campaigns/(\d+)"', rest)]
    assert len(more) == 5 and not set(more) & set(ids) and "<html" not in rest


def test_a_campaign_page_costs_the_same_statements_for_5_members_as_for_60(client, sandbox, manual_clock, settings):
    world = build_world(sandbox, members=60, stores=3, staff=6)
    with session_scope() as s:
        five = Segment(name="五人", definition={"channel": "wecom"}, depends_on=[])
        s.add(five)
        s.flush()
        s.add_all(SegmentMembership(segment_id=five.id, member_id=m) for m in world.members[:5])
        five_id = five.id
    sign_in(client)
    engine = engine_for(settings.database_url)
    counts = []
    for segment_id in (five_id, world.segment_id):
        cid, _ = _launched(client, segment_id)
        counts.append(_count_statements(engine, lambda c=cid: client.get(f"/console/campaigns/{c}")))
    assert counts[0] == counts[1]
