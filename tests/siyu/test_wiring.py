"""The wiring is explicit: every process installs the same listeners and handlers, whatever it imported."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bot.credentials import wecom_credentials
from config.database import session_scope
from config.queue import in_process_runner
from config.settings import get_settings
from membership import hooks
from membership.identity import IdentityIn, bind
from membership.models import Member, TimelineEvent
from membership.timeline import record_event
from segments import service as segments
from segments.models import EventDayCount, SegmentMembership
from siyu import packages

ROOT = Path(__file__).resolve().parents[2]
SIYU = Path(sys.executable).with_name("siyu")


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_segment_on_contact_transfer_failed_is_valid_in_a_process_that_imported_no_callback_module():
    # given a fresh process that imports the segment language alone
    done = _fresh_python("from segments.language import parse; parse({'event': 'contact.transfer_failed'}); "
                         "import sys; print(sorted(m for m in sys.modules if m.startswith('webhooks')))")
    # then the event type is known, and no callback module had to be imported for that
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_process_that_did_not_install_the_wiring_refuses_to_dispatch_instead_of_dropping_events():
    # given a fresh process that never called siyu.wiring.install(), when it looks up a handler
    done = _fresh_python("from webhooks.dispatch import handler_for; "
                         "handler_for('wecom', 'event', 'change_external_contact', 'add_external_contact')")
    # then it fails (the job is retried) rather than answering "no handler" (the event kept as unhandled)
    assert done.returncode != 0 and "HandlersNotLoaded" in done.stderr


def test_siyu_sync_wecom_in_a_fresh_process_counts_and_segments_the_members_it_merges(sandbox, tmp_path):
    corp = wecom_credentials(get_settings()).corp_id
    # given an official-account follower with unionid uMERGE, and (later) a WeCom customer Siyu knows only by
    # external_userid, each with their own event
    with session_scope() as s:
        follower = bind(s, [IdentityIn("oa_openid", "oMERGE", scope="wxoa"), IdentityIn("unionid", "uMERGE")]).member
        record_event(s, follower.id, "oa.subscribed", {"scene": None})
    with session_scope() as s:
        customer = bind(s, [IdentityIn("wecom_external", "wmMERGE", scope=corp)]).member
        record_event(s, customer.id, "contact.added", {"staff": "zhangsan"})
        both = segments.create_segment(s, name="关注且加微", definition={"all": [
            {"event": "oa.subscribed"}, {"event": "contact.added", "within_days": 30}]})
        added = segments.create_segment(s, name="近期加微", definition={"event": "contact.added", "within_days": 30})
    assert in_process_runner().drain(30)
    with session_scope() as s:
        assert _memberships(s) == {(added.id, customer.id)}
    # and WeCom now reports that customer with the follower's unionid
    sandbox.add_staff("zhangsan", "张三")
    sandbox.add_external_contact("zhangsan", external_userid="wmMERGE", unionid="uMERGE", name="韩梅梅")
    # when `siyu sync wecom` runs in a process of its own
    env = {k: v for k, v in os.environ.items() if k.startswith("SIYU_")} | {
        "PATH": str(SIYU.parent), "HOME": str(tmp_path), "COLUMNS": "200"}
    done = subprocess.run([str(SIYU), "sync", "wecom"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "members_merged=1" in done.stdout  # the report is the result (stdout); logs go to stderr
    # then the follower survived, and its daily counters hold both events while the merged member has none
    with session_scope() as s:
        assert s.get(Member, customer.id).merged_into_id == follower.id
        counts = {(r.member_id, r.type): r.n for r in s.scalars(select(EventDayCount))}
        assert counts[follower.id, "oa.subscribed"] == counts[follower.id, "contact.added"] == 1
        assert [key for key in counts if key[0] == customer.id] == []
        # and its segments were re-checked: it entered both, and the merged member's membership was dropped
        assert _memberships(s) == {(both.id, follower.id), (added.id, follower.id)}
        entered = s.scalars(select(TimelineEvent.data).where(TimelineEvent.type == "segment.entered",
                                                             TimelineEvent.member_id == follower.id))
        assert sorted(d["segment_id"] for d in entered) == sorted([both.id, added.id, added.id])


def _memberships(s) -> set[tuple[int, int]]:
    return set(s.execute(select(SegmentMembership.segment_id, SegmentMembership.member_id)).all())


def test_every_listener_of_a_package_is_bound_by_the_wiring():
    # given every public on_* function of a `listeners` module, when the wiring is installed (root conftest)
    from segments import listeners

    bound = {*hooks.EVENT_LISTENERS, *hooks.MERGE_LISTENERS, *hooks.TAG_LISTENERS, *hooks.TRAIT_LISTENERS}
    public = {fn for n, fn in vars(listeners).items() if n.startswith("on_") and fn.__module__ == listeners.__name__}
    # then each is registered with a profile-store hook
    assert public and public <= bound


def _modules_where(predicate) -> set[str]:
    found = set()
    for package in ("config", "membership", "bot", "segments", "webhooks", "campaigns", "miniprogram_api", "console",
                    "siyu"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "packages.py" and predicate(path, ast.parse(path.read_text())):
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def _calls(tree: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
               for n in ast.walk(tree))


def _assigns(tree: ast.Module, name: str) -> bool:
    return any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == name for t in n.targets)
               for n in tree.body)


def test_every_module_with_tables_routes_handlers_or_schedules_is_listed_once():
    # given the modules that declare tables, a router, callback handlers or schedules
    models = _modules_where(lambda p, t: p.name == "models.py" and _calls(t, "mapped_column"))
    routers = _modules_where(lambda p, t: _assigns(t, "router") and "sandbox" not in p.parts)
    handlers = _modules_where(lambda p, t: _calls(t, "handles") and p.name != "dispatch.py")
    schedules = _modules_where(lambda p, t: _assigns(t, "SCHEDULES"))
    # then siyu.packages lists exactly those, each once
    for listed, found in ((packages.MODELS, models), (packages.ROUTERS, routers), (packages.HANDLERS, handlers),
                          (packages.SCHEDULES, schedules)):
        assert len(listed) == len(set(listed)) and set(listed) == found
