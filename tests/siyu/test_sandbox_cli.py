"""`siyu sandbox seed|send|reset`: the sandbox driven from the command line, results on stdout, refusals before
anything is sent. Served in this process over real HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.sandbox import store
from bot.sandbox.serve import free_port, serve_in_background
from bot.sandbox.state import get_state, reset_state
from config.settings import get_settings
from siyu.cli import app as cli
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TIMEOUT = 30  # httpx's 5 s default: a server whose job threads share a busy CI machine answered later once


def _run(*args):
    return CliRunner().invoke(cli, ["sandbox", *args])


@pytest.fixture
def siyu(settings, monkeypatch):
    """Siyu (its sandbox at /sandbox) served over HTTP at SIYU_PUBLIC_URL; the sandbox unshared afterwards."""
    from bot.clients import reset_clients
    from siyu.app import create_app

    port = free_port()
    monkeypatch.setenv("SIYU_PUBLIC_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setattr(store, "_sharing", None)  # restored to "not shared" when the test ends
    get_settings.cache_clear()
    reset_clients()
    reset_state()
    server = serve_in_background(create_app(), port=port)
    yield server.url.rstrip("/")
    server.stop()
    reset_clients()
    reset_state()


def _snapshot():
    s = get_state()
    return json.dumps([s.departments, s.staff, s.contacts, s.follows, s.tag_groups, s.oa_followers, s.mp_users,
                       [(c["name"], c["member_list"]) for c in s.group_chats.values()]], sort_keys=True)


def test_seeding_twice_adds_nothing_to_the_sandbox_or_to_siyu(siyu):
    import httpx

    # given a seeded sandbox, reconciled into Siyu
    first = _run("seed", "--customers", "6")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0] == ("sandbox: stores=wecom-100,wecom-101 staff=staff000,staff001,staff002,"
                                            "staff003 customers=6 oa_followers=3 mp_users=3")
    assert "members_created=6" in first.stdout
    before = _snapshot()
    members = httpx.get(f"{siyu}/api/v1/members", headers=ADMIN, timeout=TIMEOUT).json()["items"]
    # when it is seeded again
    second = _run("seed", "--customers", "6")
    # then the sandbox holds the same corp, and the sync found nothing to create
    assert second.exit_code == 0, second.output
    assert _snapshot() == before
    assert second.stdout.splitlines()[1] == "synced: contacts_seen=6 group_chats_seen=1 group_members_seen=4"
    assert httpx.get(f"{siyu}/api/v1/members", headers=ADMIN, timeout=TIMEOUT).json()["items"] == members


def test_add_contact_through_a_channel_code_makes_a_tagged_member_and_prints_what_was_sent(siyu):
    import httpx

    # given a seeded sandbox and a channel code with a tag
    assert _run("seed", "--customers", "2").exit_code == 0
    code = httpx.post(f"{siyu}/api/v1/channel-codes", headers=ADMIN, timeout=TIMEOUT, json={
        "name": "前台码", "store": "wecom-101", "staff": ["staff001"], "tags": ["新客"]})
    assert code.status_code == 201, code.text
    # when a customer scans it
    sent = _run("send", "add-contact", "--state", code.json()["state"], "--name", "韩梅梅")
    # then one JSON line says who added whom and that Siyu handled it
    assert sent.exit_code == 0, sent.output
    result = json.loads(sent.stdout)
    assert (result["event"], result["staff"], result["state"], result["status"], result["handled"]) == (
        "add_external_contact", "staff001", code.json()["state"], 200, "done")
    # and the customer is a member of the code's store with its tag
    [member] = httpx.get(f"{siyu}/api/v1/members", headers=ADMIN, timeout=TIMEOUT,
                         params={"external_userid": result["external_userid"]}).json()["items"]
    assert (member["name"], member["store"], member["tags"]) == ("韩梅梅", "wecom-101", ["新客"])

    # when the staff member deletes them
    gone = _run("send", "del-contact", "--staff", "staff001", "--customer", result["external_userid"])
    # then the relation has ended, as removed by the staff member
    assert gone.exit_code == 0, gone.output
    assert json.loads(gone.stdout)["event"] == "del_external_contact" and json.loads(gone.stdout)["handled"] == "done"
    [member] = httpx.get(f"{siyu}/api/v1/members", headers=ADMIN, timeout=TIMEOUT,
                         params={"external_userid": result["external_userid"]}).json()["items"]
    assert [r["status"] for r in member["relations"]] == ["removed_by_staff"]


def test_oa_subscribe_text_and_mp_text_reach_siyu(siyu):
    import httpx

    # given an auto-reply on the official account
    httpx.post(f"{siyu}/api/v1/auto-replies", headers=ADMIN, timeout=TIMEOUT, json={
        "keywords": ["验光"], "match": "contains", "reply_text": "周六可免费验光"}).raise_for_status()
    # when someone follows the account and asks, and a mini-program user writes
    followed = _run("send", "oa-subscribe", "--openid", "oNEW1", "--unionid", "uNEW1")
    asked = _run("send", "text", "--openid", "oNEW1", "--text", "周六能验光吗")
    wrote = _run("send", "mp-text", "--openid", "oMPNEW1", "--unionid", "uNEW1", "--text", "拼团怎么参加")
    # then each was handled, the question answered with the passive reply the follower reads
    assert [r.exit_code for r in (followed, asked, wrote)] == [0, 0, 0], asked.output
    assert [json.loads(r.stdout)["handled"] for r in (followed, asked, wrote)] == ["done"] * 3
    assert "周六可免费验光" in json.loads(asked.stdout)["reply"]
    # and the follower is a member by their unionid, with their official-account openid
    [member] = httpx.get(f"{siyu}/api/v1/members", headers=ADMIN, timeout=TIMEOUT,
                         params={"unionid": "uNEW1"}).json()["items"]
    assert ("oNEW1" in {i["value"] for i in member["identities"]}), member["identities"]


def test_template_finish_reports_the_oldest_template_message_and_refuses_when_none_waits(siyu):
    # given one template message the sandbox sent to a follower
    from bot.clients import oa_client

    state = get_state()
    openid = state.add_oa_follower("oFAN1")
    state.add_oa_template("TPL")
    msgid = oa_client().send_template(openid, "TPL", {"thing1": {"value": "回访"}})["msgid"]
    # when its fate is sent, and sent again with none waiting
    first, again = _run("send", "template-finish"), _run("send", "template-finish")
    # then Siyu handled the event, and the second is refused before anything is sent
    assert first.exit_code == 0, first.output
    assert {k: json.loads(first.stdout)[k] for k in ("msgid", "fate", "handled")} == {
        "msgid": msgid, "fate": "success", "handled": "done"}
    assert again.exit_code == 2 and "no template message is waiting" in again.output


@pytest.mark.parametrize("args, says", [
    (["add-contact", "--staff", "ghost"], "--staff ghost: not a member of the sandbox corp"),
    (["add-contact", "--state", "s" * 31], "--state: WeCom's state is 1 to 30 characters, got 31"),
    (["add-contact", "--state", "nosuchcode"], "--state nosuchcode: no 联系我 code has it"),
    (["del-contact", "--staff", "staff000", "--customer", "wmNOBODY"], "--customer wmNOBODY: not a contact"),
    (["text", "--openid", "oSTRANGER", "--text", "hi"], "--openid oSTRANGER: does not follow the official account"),
    (["mp-text", "--text", "   "], "--text: 1 to 2048 bytes"),
])
def test_what_tencent_could_not_send_is_refused_before_anything_changes(siyu, args, says):
    # given a seeded sandbox
    assert _run("seed", "--no-sync", "--customers", "1").exit_code == 0
    before = _snapshot()
    # when a callback Tencent could not have sent is asked for
    result = _run("send", *args)
    # then it exits 2 with the reason on stderr, nothing on stdout, and the sandbox is unchanged
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert says in " ".join(result.stderr.split())
    assert _snapshot() == before


def test_an_unreachable_siyu_exits_1_with_the_url(settings, monkeypatch):
    # given a seeded sandbox and SIYU_PUBLIC_URL where nothing listens
    url = f"http://127.0.0.1:{free_port()}/"
    monkeypatch.setenv("SIYU_PUBLIC_URL", url)
    monkeypatch.setattr(store, "_sharing", None)
    get_settings.cache_clear()
    reset_state()
    try:
        assert _run("seed", "--no-sync").exit_code == 0
        # when a callback is sent
        result = _run("send", "add-contact")
        # then it says where it found no Siyu
        assert result.exit_code == 1 and result.stdout == ""
        assert f"Siyu is not reachable at {url}" in " ".join(result.stderr.split())
    finally:
        reset_state()


def test_reset_empties_the_sandbox(siyu):
    assert _run("seed", "--no-sync").exit_code == 0 and get_state().staff
    result = _run("reset")
    assert result.exit_code == 0 and result.stdout == "sandbox: empty\n"
    assert get_state().staff == {} and get_state().contacts == {}


def test_card_click_taps_a_task_card_and_siyu_completes_the_task(siyu):
    from sqlalchemy import select

    from campaigns import clock
    from campaigns.tasks.models import StaffTask
    from config.database import session_scope
    from tests.campaigns.conftest import MORNING, build_world
    from tests.campaigns.test_staff_tasks import launch

    # given a staff-task campaign whose cards went out (launched on a weekday morning, outside quiet hours)
    world = build_world(get_state(), members=4, stores=1, staff=1)
    with clock.using(clock.Manual(MORNING)):
        launch(world.segment_id, times=1)
    with session_scope() as s:
        task_id = s.scalar(select(StaffTask.task_id))
    # when someone the card never reached taps it, nothing is sent
    refused = _run("send", "card-click", "--staff", "nobody", "--task-id", task_id)
    assert refused.exit_code == 2 and "has no card" in refused.stderr
    # and when they tap 完成, Siyu handles the callback and the task is done
    result = _run("send", "card-click", "--staff", world.staff[0], "--task-id", task_id)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["handled"] == "done"
    with session_scope() as s:
        assert s.scalar(select(StaffTask.status)) == "done"
