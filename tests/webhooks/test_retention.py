"""Inbox retention: finished payloads are emptied after SIYU_INBOX_RETENTION_DAYS; rows, keys and statuses stay,
so a late duplicate is still recognised and changes nothing."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from config.settings import get_settings
from config.types import utcnow
from tests.webhooks.conftest import ADMIN, fixture_text, inbox_rows, wecom_creds, wecom_post
from webhooks.inbox import inbox_scope
from webhooks.models import InboxEvent
from webhooks.retention import purge_inbox_payloads

ADD = fixture_text("wecom", "event__change_external_contact__add_external_contact.xml")


def _variant(n: int) -> str:
    return ADD.replace("wmEXT0001", f"wmEXT01{n:02d}").replace("WELCOMECODE0001", f"WELCOMECODE01{n:02d}")


def _age(inbox_id: int, days: float, status: str | None = None) -> None:
    values = {"received_at": utcnow() - timedelta(days=days)}
    if status:
        values["status"] = status
    with inbox_scope() as s:
        s.execute(update(InboxEvent).where(InboxEvent.id == inbox_id).values(**values))


def _kept(row) -> tuple:
    return row.id, row.content_key, row.source, row.msg_type, row.event, row.change_type, row.status, \
        row.attempts, row.received_at, row.processed_at


def test_old_finished_payloads_are_emptied_and_a_late_duplicate_still_changes_nothing(client, enqueued):
    # given five deliveries: done, unhandled and failed ones past the 30 days, one still `received`, one recent
    for n in range(5):
        assert wecom_post(client, wecom_creds(), _variant(n)).status_code == 200
    rows = inbox_rows()
    for row, status in zip(rows[:3], ("done", "unhandled", "failed"), strict=True):
        _age(row.id, 31, status)
    _age(rows[3].id, 31)  # its worker never came: the sweeper's, not the purge's
    _age(rows[4].id, 29, "done")
    before = {r.id: _kept(r) for r in inbox_rows()}
    jobs = len(enqueued)
    # when the daily purge runs
    assert purge_inbox_payloads() == 3
    # then exactly the old finished rows lost their payload and data, and kept everything else
    after = inbox_rows()
    assert [(r.payload == "", r.data == {}) for r in after] == [(True, True)] * 3 + [(False, False)] * 2
    assert {r.id: _kept(r) for r in after} == before
    assert after[3].payload == _variant(3) and after[4].data["ExternalUserID"] == "wmEXT0104"
    # and when WeCom delivers the purged event once more, it is answered 200 and nothing changes
    r = wecom_post(client, wecom_creds(), _variant(0))
    assert r.status_code == 200 and r.text == ""
    assert {r.id: (_kept(r), r.payload) for r in inbox_rows()} == {
        r.id: (_kept(r), r.payload) for r in after}
    assert len(enqueued) == jobs
    # and a second run finds nothing left to do
    assert purge_inbox_payloads() == 0


def test_the_retention_is_the_setting_and_batches_cover_every_row(client, enqueued, monkeypatch):
    # given a retention of 7 days and seven finished rows, six of them 8 days old
    monkeypatch.setenv("SIYU_INBOX_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    for n in range(7):
        wecom_post(client, wecom_creds(), _variant(n))
    rows = inbox_rows()
    for row in rows[:6]:
        _age(row.id, 8, "done")
    _age(rows[6].id, 6, "done")
    # when the purge runs two rows per transaction, then every old row is emptied and the younger one kept
    assert purge_inbox_payloads(batch=2) == 6
    assert [r.payload == "" for r in inbox_rows()] == [True] * 6 + [False]


def test_a_purged_event_cannot_be_replayed(client, enqueued):
    # given a failed event whose payload the retention emptied
    wecom_post(client, wecom_creds(), ADD)
    [row] = inbox_rows()
    _age(row.id, 40, "failed")
    purge_inbox_payloads()
    # when an admin replays it, then 409: there is nothing left to handle, and the row stays failed
    r = client.post(f"/api/v1/inbox/{row.id}/replay", headers=ADMIN)
    assert r.status_code == 409 and "retention" in r.json()["detail"]
    assert [r.status for r in inbox_rows()] == ["failed"]
