"""Sandbox WeCom messaging: mass-message tasks and their results, app messages and template cards."""
from __future__ import annotations

import time

from bot.sandbox import wecom_cards
from bot.sandbox.errors import err, ok
from bot.sandbox.wecom_api import WECOM

api = WECOM.api
MASS_MAX_CUSTOMERS = 10000  # external_userid per add_msg_template
MASS_TEXT_MAX_BYTES = 4000  # text.content
MASS_MAX_ATTACHMENTS = 9
TASK_PAGE_MAX = 1000  # get_groupmsg_task / get_groupmsg_send_result: limit at most 1,000 (default 500)
REMINDS_PER_DAY = 3  # remind_groupmsg_send: at most three reminders per mass message in 24 hours


MINIPROGRAM_TITLE_MAX_BYTES = 64


def _attachments_refused(state, attachments: list) -> dict | None:
    """A miniprogram attachment needs title (≤ 64 bytes), pic_media_id, the corp's linked mini-program's appid,
    and a page path with an .html suffix (WeCom's documented rules)."""
    for i, item in enumerate(attachments):
        if not isinstance(item, dict) or item.get("msgtype") not in ("image", "link", "miniprogram", "video", "file"):
            return err("invalid_parameter", f"attachments[{i}].msgtype")
        if item["msgtype"] != "miniprogram":
            continue
        mini = item.get("miniprogram") or {}
        if not mini.get("title") or len(str(mini["title"]).encode()) > MINIPROGRAM_TITLE_MAX_BYTES:
            return err("invalid_parameter", f"attachments[{i}].miniprogram.title")
        if not mini.get("pic_media_id"):
            return err("invalid_parameter", f"attachments[{i}].miniprogram.pic_media_id")
        if mini.get("appid") != state.mp_app_id:
            return err("invalid_parameter", f"attachments[{i}].miniprogram.appid: not a mini-program of the corp")
        if not str(mini.get("page") or "").split("?", 1)[0].endswith(".html"):
            return err("invalid_parameter", f"attachments[{i}].miniprogram.page: needs the .html suffix")
    return None


@api("POST", "externalcontact/add_msg_template")
def add_msg_template(state, body, q):
    chat_type = body.get("chat_type", "single")
    if chat_type not in ("single", "group"):
        return err("invalid_parameter", "chat_type")
    if not body.get("text") and not body.get("attachments"):
        return err("invalid_parameter", "text or attachments is required")
    text = body.get("text")
    if text is not None and (not isinstance(text, dict) or not isinstance(text.get("content", ""), str)):
        return err("invalid_parameter", "text: {\"content\": …}")
    if text and len(text.get("content", "").encode()) > MASS_TEXT_MAX_BYTES:
        return err("invalid_parameter", f"text.content: at most {MASS_TEXT_MAX_BYTES} bytes")
    if len(body.get("attachments") or []) > MASS_MAX_ATTACHMENTS:
        return err("invalid_parameter", f"at most {MASS_MAX_ATTACHMENTS} attachments")
    refused = _attachments_refused(state, body.get("attachments") or [])
    if refused:
        return refused
    if chat_type == "group" and not body.get("sender"):
        return err("invalid_parameter", "sender is required for chat_type group")
    if state.msg_template_delay:  # tests slow the calls down to catch a worker in the middle of a fan-out
        time.sleep(state.msg_template_delay)
    exts = body.get("external_userid") or []
    sender = body.get("sender")
    if len(exts) > MASS_MAX_CUSTOMERS:
        return err("invalid_parameter", f"at most {MASS_MAX_CUSTOMERS} external_userid")
    if sender is not None and sender not in state.staff:
        return err("invalid_userid", sender)
    if not exts and not sender:
        return err("invalid_parameter", "external_userid or sender is required")
    # Each customer goes to the sender's task, or without a sender to a staff member who has them.
    by_sender: dict[str, list[str]] = {}
    fail = []
    candidates = exts or list(state.follows.get(sender, {}))
    for ext in candidates:
        owners = [sender] if sender else [u for u, f in state.follows.items() if ext in f]
        owner = next((u for u in owners if ext in state.follows.get(u, {})), None)
        if owner is None:
            fail.append(ext)
        else:
            by_sender.setdefault(owner, []).append(ext)
    if not by_sender:
        return ok(fail_list=fail, msgid="")
    msgid = state.new_id("msg", 26)
    state.msg_tasks[msgid] = {
        "msgid": msgid, "creator": sender or "", "create_time": int(state.now()),
        "create_type": 0, "chat_type": chat_type,
        "text": body.get("text"), "attachments": body.get("attachments") or [],
        "senders": {u: {"status": 0, "send_time": 0,
                        "results": [{"external_userid": e, "userid": u, "status": 0} for e in es]}
                    for u, es in by_sender.items()},
    }
    return ok(fail_list=fail, msgid=msgid)


@api("POST", "externalcontact/get_groupmsg_list_v2")
def groupmsg_list_v2(state, body, q):
    start, end = int(body.get("start_time") or 0), int(body.get("end_time") or 0)
    if not start or not end or end < start or end - start > 31 * 86400:
        return err("invalid_parameter", "start_time/end_time: a range of at most one month")
    creator = body.get("creator")
    tasks = [t for t in state.msg_tasks.values()
             if start <= t["create_time"] <= end and t["chat_type"] == body.get("chat_type", "single")
             and (not creator or t["creator"] == creator)]
    limit = min(int(body.get("limit") or 50), 100)
    offset = int(body.get("cursor") or 0)
    page = tasks[offset:offset + limit]
    items = [{k: t[k] for k in ("msgid", "creator", "create_time", "create_type")}
             | ({"text": t["text"]} if t["text"] else {}) | {"attachments": t["attachments"]} for t in page]
    nxt = str(offset + limit) if offset + limit < len(tasks) else ""
    return ok(group_msg_list=items, next_cursor=nxt)


def _task(state, body):
    return state.msg_tasks.get(body.get("msgid", ""))


@api("POST", "externalcontact/get_groupmsg_task")
def groupmsg_task(state, body, q):
    task = _task(state, body)
    if task is None:
        return err("invalid_msgid")
    rows = [{"userid": u, "status": s["status"], **({"send_time": s["send_time"]} if s["send_time"] else {})}
            for u, s in task["senders"].items()]
    limit = int(body.get("limit") or 500)
    if not 1 <= limit <= TASK_PAGE_MAX:
        return err("invalid_parameter", f"limit: 1 to {TASK_PAGE_MAX}")
    offset = int(body.get("cursor") or 0)
    nxt = str(offset + limit) if offset + limit < len(rows) else ""
    return ok(task_list=rows[offset:offset + limit], next_cursor=nxt)


@api("POST", "externalcontact/get_groupmsg_send_result")
def groupmsg_send_result(state, body, q):
    task = _task(state, body)
    if task is None:
        return err("invalid_msgid")
    sender = task["senders"].get(body.get("userid", ""))
    if sender is None:
        return ok(send_list=[], next_cursor="")
    limit = int(body.get("limit") or 500)
    if not 1 <= limit <= TASK_PAGE_MAX:
        return err("invalid_parameter", f"limit: 1 to {TASK_PAGE_MAX}")
    offset = int(body.get("cursor") or 0)
    page = sender["results"][offset:offset + limit]
    nxt = str(offset + limit) if offset + limit < len(sender["results"]) else ""
    return ok(send_list=[dict(r) for r in page], next_cursor=nxt)


@api("POST", "externalcontact/remind_groupmsg_send")
def remind_groupmsg_send(state, body, q):
    task = _task(state, body)
    if task is None:
        return err("invalid_msgid")
    now = state.now()
    recent = [t for t in task.get("remind_times", []) if now - t < 86400]
    if len(recent) >= REMINDS_PER_DAY:
        return err("freq_limit", f"at most {REMINDS_PER_DAY} reminders per mass message in 24 hours")
    task["remind_times"] = [*recent, now]
    task["reminded"] = task.get("reminded", 0) + 1
    return ok()


def _agent_refusal(state, body, q) -> dict | None:
    # WeCom sends app messages as one app: the agentid must be an app's, and the token that app's secret's
    # (a 客户联系 secret's token is refused), so a client wired to the wrong secret fails here as it would live.
    if str(body.get("agentid", "")) != state.agent_id:
        return err("invalid_agentid", str(body.get("agentid")))
    token = state.tokens.get(q.get("access_token", ""))
    if token is None or token.secret != state.agent_secret:
        return err("agent_mismatch")
    return None


@api("GET", "agent/get")
def agent_get(state, body, q):
    # A corp may read only the app its token belongs to ("企业仅可获取当前凭证对应的应用").
    if refused := _agent_refusal(state, {"agentid": q.get("agentid", "")}, q):
        return refused
    visible = [{"userid": u} for u in state.staff]
    return ok(agentid=int(state.agent_id), name="Siyu 沙箱应用", description="门店助手",
              square_logo_url="https://sandbox.invalid/wecom/agent.png", allow_userinfos={"user": visible},
              allow_partys={"partyid": [1]}, allow_tags={"tagid": []}, close=0, redirect_domain="sandbox.invalid",
              report_location_flag=0, isreportenter=0, home_url="")


@api("POST", "message/send")
def message_send(state, body, q):
    if refused := _agent_refusal(state, body, q):
        return refused
    msgtype = body.get("msgtype")
    if msgtype not in ("text", "markdown", "template_card", "textcard", "news"):
        return err("invalid_parameter", "msgtype")
    if msgtype not in body:
        return err("invalid_parameter", f"{msgtype} is required")
    users = [u for u in (body.get("touser") or "").split("|") if u]
    if body.get("touser") == "@all":
        users = list(state.staff)
    invalid = [u for u in users if u not in state.staff]
    valid = [u for u in users if u in state.staff]
    if not valid:
        return err("invalid_userid", "touser")
    if msgtype == "template_card" and (refused := wecom_cards.card_refusal(state, body["template_card"])):
        return refused
    msgid = state.new_id("", 40)
    record = {**body, "msgid": msgid, "delivered_to": valid}
    extra = {}
    if msgtype == "template_card" and (code := wecom_cards.sent(state, body["template_card"], record)):
        extra["response_code"] = code
    state.app_messages.append(record)
    return ok(invaliduser="|".join(invalid), invalidparty="", invalidtag="", unlicenseduser="", msgid=msgid, **extra)


@api("POST", "message/update_template_card")
def update_template_card(state, body, q):
    if refused := _agent_refusal(state, body, q):
        return refused
    if refused := wecom_cards.update(state, body):
        return refused
    return ok(invaliduser=[])
