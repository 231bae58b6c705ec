"""Every handled (source, MsgType, Event, ChangeType) has a fixture payload, and every fixture is handled."""
from __future__ import annotations

import pytest

from tests.webhooks.conftest import FIXTURES, handle
from webhooks.crypto import parse_body
from webhooks.dispatch import load_handlers
from webhooks.inbox import event_kind

SOURCES = ("wecom", "official_account", "miniprogram")
ALL_FIXTURES = sorted(p for s in SOURCES for p in (FIXTURES / s).iterdir() if p.is_file())


def _stem_key(path) -> tuple[str, str, str, str]:
    # event__change_external_contact__add_external_contact@variant.xml -> (source, event, change_..., add_...)
    parts = path.name.split("@")[0].rsplit(".", 1)[0].split("__")
    parts += [""] * (3 - len(parts))
    return (path.parent.name, *parts)


def test_every_handled_event_kind_has_a_fixture():
    # given the handler table, when fixture names are read, then no handled kind lacks a payload
    covered = {_stem_key(p) for p in ALL_FIXTURES}
    missing = sorted(set(load_handlers()) - covered)
    assert missing == [], f"handled without a fixture in tests/fixtures/: {missing}"


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_is_named_for_its_kind_and_has_a_handler(path):
    # given a fixture, when parsed, then its file name says its kind and that kind is handled
    data, _ = parse_body(path.read_text())
    key = (path.parent.name, *event_kind(data))
    assert _stem_key(path) == key
    assert key in load_handlers()


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_is_handled_to_done(path, enqueued, fake_wecom, fake_oa):
    # given a WeCom that knows the fixtures' customer, chat and tag
    fake_wecom.add_contact("wmEXT0001", "zhangsan", unionid="uEXT0001")
    fake_wecom.chats["wrCHAT0001"] = {"chat_id": "wrCHAT0001", "name": "群", "owner": "zhangsan",
                                      "member_list": [{"userid": "wmEXT0001", "type": 2, "join_time": 1700000000}]}
    fake_wecom.corp_tags = [{"group_id": "etGROUP001", "group_name": "兴趣",
                             "tag": [{"id": "etTAG0001", "name": "咖啡"}]}]
    # when the fixture is stored and processed, then its row ends done
    row = handle(path.parent.name, path.read_text())
    assert row.status == "done", row.error
