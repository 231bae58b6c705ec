"""The `wecom_mass_message` action's WeCom calls: add_msg_template per claimed chunk, reconciliation of an
interrupted call against get_groupmsg_list_v2, results from get_groupmsg_task / get_groupmsg_send_result,
and reminders within remind_groupmsg_send's limit (3 per message in 24 hours)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.clients import wecom_client
from bot.errors import BusyError, RateLimitedError, TokenError, TransportError, WeChatAPIError
from campaigns import clock, outcomes
from campaigns.claims import Work
from campaigns.models import CampaignSend, SendStatus
from config.database import session_scope
from config.settings import get_settings
from membership.models import Staff

log = logging.getLogger(__name__)

PASSING = (RateLimitedError, BusyError, TokenError)  # nothing went out, and a later try may get through
RECONCILE_SLACK = timedelta(minutes=10)  # around the claim: clocks differ, the call may have been slow
REMINDS_PER_DAY = 3
POLL_EVERY = timedelta(minutes=30)


def body_of(action: dict, userid: str, recipients: tuple[str, ...]) -> dict:
    """The add_msg_template body: single chat, the owning staff member as sender, their customers in the chunk."""
    body = {"chat_type": "single", "sender": userid, "external_userid": list(recipients)}
    if action.get("text"):
        body["text"] = {"content": action["text"]}
    if action.get("attachments"):
        body["attachments"] = list(action["attachments"])
    return body


def call(work: Work) -> str:
    """Make the claimed chunk's call and record what came of it: submitted, refused, or unknown."""
    try:
        answer = wecom_client().add_msg_template(body_of(work.action, work.userid, work.recipients))
    except TransportError as exc:
        with session_scope() as s:
            outcomes.unknown(s, send_id=work.send_id, attempt=work.attempt, error=str(exc), now=clock.now())
        log.warning("campaign send %s: outcome unknown, reconciled before any retry: %s", work.send_id, exc)
        return "unknown"
    except WeChatAPIError as exc:
        with session_scope() as s:
            outcomes.refused(s, send_id=work.send_id, attempt=work.attempt, error=str(exc),
                             retry=isinstance(exc, PASSING), now=clock.now())
        log.warning("campaign send %s: refused by WeCom: %s", work.send_id, exc)
        return "refused"
    except Exception as exc:  # not WeCom's answer: whether anything went out is unknown
        with session_scope() as s:
            outcomes.unknown(s, send_id=work.send_id, attempt=work.attempt, error=f"{type(exc).__name__}: {exc}",
                             now=clock.now())
        raise
    with session_scope() as s:
        outcomes.submitted(s, send_id=work.send_id, attempt=work.attempt, msgid=answer.get("msgid") or None,
                           fail_list=list(answer.get("fail_list") or []), now=clock.now())
    return "submitted"


def _text(item: dict) -> str | None:
    text = item.get("text")
    return text.get("content") if isinstance(text, dict) else text


def _send_result(client, msgid: str, userid: str) -> list[dict]:
    rows, cursor = [], ""
    while True:
        page = client.get_groupmsg_send_result(msgid, userid, limit=1000, cursor=cursor)
        rows += page.get("send_list") or []
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return rows


def find_task(work: Work) -> tuple[str, list[str]] | None:
    """The mass message an interrupted call created, if WeCom has it: (msgid, its fail_list)."""
    client = wecom_client()
    claimed = work.claimed_at or clock.now()
    start = int((claimed - RECONCILE_SLACK).timestamp())
    end = int(min(clock.now() + RECONCILE_SLACK, claimed + timedelta(days=30)).timestamp())
    wanted, ours = (work.action.get("text") or None), set(work.recipients)
    with session_scope() as s:
        taken = set(s.scalars(select(CampaignSend.msgid).where(CampaignSend.msgid.is_not(None),
                                                               CampaignSend.id != work.send_id)))
    cursor = ""
    while True:
        page = client.get_groupmsg_list_v2(chat_type="single", start_time=start, end_time=end, creator=work.userid,
                                           filter_type=0, limit=100, cursor=cursor)
        for item in page.get("group_msg_list") or []:
            if item.get("msgid") in taken or _text(item) != wanted:
                continue
            got = {r.get("external_userid") for r in _send_result(client, item["msgid"], work.userid)}
            if got and got <= ours:  # the same staff member's message to customers of this chunk only
                return item["msgid"], sorted(ours - got)
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return None


def reconcile(work: Work) -> str:
    """Settle a chunk whose call may have gone out: submitted when WeCom has it, planned again when not."""
    try:
        found = find_task(work)
    except WeChatAPIError as exc:
        with session_scope() as s:
            outcomes.unknown(s, send_id=work.send_id, attempt=work.attempt, error=f"reconcile: {exc}", now=clock.now())
        return "unknown"
    with session_scope() as s:
        if found is None:
            outcomes.not_sent(s, send_id=work.send_id, attempt=work.attempt, now=clock.now())
            log.info("campaign send %s: WeCom has no such message; planned again", work.send_id)
            return "not sent"
        outcomes.submitted(s, send_id=work.send_id, attempt=work.attempt, msgid=found[0], fail_list=found[1],
                           now=clock.now())
        log.info("campaign send %s: found as %s", work.send_id, found[0])
        return "submitted"


def poll(send_id: int) -> str:
    """Read one submitted chunk's results (or nudge its staff member); 'done', 'waiting' or 'not confirmed'."""
    settings = get_settings()
    now = clock.now()
    with session_scope() as s:
        # The poll is claimed by moving its next time: two pollers never read, remind or record one chunk twice.
        cs = CampaignSend
        took = s.execute(update(cs).where(cs.id == send_id, cs.status == SendStatus.submitted.value,
                                          cs.next_poll_at <= now).values(next_poll_at=now + POLL_EVERY)
                         .returning(cs.id)).scalar()
        if took is None:
            return "done"
        send = s.get(CampaignSend, send_id)
        userid = s.scalar(select(Staff.userid).where(Staff.id == send.staff_id))
        msgid, submitted_at, reminded = send.msgid, send.submitted_at, list(send.reminded or [])
    client = wecom_client()
    status, send_time, cursor = 0, None, ""
    while True:
        page = client.get_groupmsg_task(msgid, limit=1000, cursor=cursor)
        for row in page.get("task_list") or []:
            if row.get("userid") == userid:
                status, send_time = int(row.get("status") or 0), row.get("send_time")
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    if status == 2:
        rows = _send_result(client, msgid, userid)
        with session_scope() as s:
            send = s.get(CampaignSend, send_id, with_for_update=True)
            if send.status == SendStatus.submitted.value:
                at = datetime.fromtimestamp(int(send_time), now.tzinfo) if send_time else now
                outcomes.results(s, send=send, userid=userid, rows=rows, confirmed_at=at, now=now)
        return "done"
    if now - submitted_at >= timedelta(hours=settings.campaign_confirm_hours):
        with session_scope() as s:
            send = s.get(CampaignSend, send_id, with_for_update=True)
            if send.status == SendStatus.submitted.value:
                outcomes.not_confirmed(s, send=send, now=now)
        return "not confirmed"
    _maybe_remind(send_id, msgid, submitted_at, reminded, now, settings.campaign_remind_after_hours)
    return "waiting"


def _maybe_remind(send_id: int, msgid: str, submitted_at: datetime, reminded: list[str], now: datetime,
                  after_hours: int) -> None:
    times = [datetime.fromisoformat(t) for t in reminded]
    recent = [t for t in times if now - t < timedelta(hours=24)]
    last = max(times, default=submitted_at)
    if len(recent) >= REMINDS_PER_DAY or now - last < timedelta(hours=after_hours):
        return
    # Recorded before the call (this poller holds the poll): a reminder that failed still counts to the limit.
    with session_scope() as s:
        s.execute(update(CampaignSend).where(CampaignSend.id == send_id).values(reminded=[*reminded, now.isoformat()]))
    try:
        wecom_client().remind_groupmsg_send(msgid)
        log.info("campaign send %s: staff reminded", send_id)
    except WeChatAPIError as exc:
        log.warning("campaign send %s: reminder refused: %s", send_id, exc)
