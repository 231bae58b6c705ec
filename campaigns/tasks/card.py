"""The task card WeCom shows a staff member: a `button_interaction` template_card (message/send), and its update.

WeCom's rules (模板卡片消息): `task_id` is unique per app, at most 128 bytes of digits, letters and `_-@`; a
button_interaction card has 1 to 6 buttons, each with a `key` the click callback carries back as EventKey.
"""
from __future__ import annotations

import secrets
from datetime import datetime

from config.settings import get_settings

DONE_KEY = "task_done"
LATER_KEY = "task_later"
DONE_LABEL = "已完成"
NAMES_SHOWN = 4  # horizontal_content_list takes at most 6 rows: the count, the due time and four names


def new_task_id(run_id: int, staff_id: int) -> str:
    """A WeCom task_id for this run's task of this staff member: unique per app even across databases."""
    return f"siyu-task-{run_id}-{staff_id}-{secrets.token_hex(6)}"


def workbench_url() -> str:
    """Where the card leads: the staff workbench (WeCom OAuth signs the staff member in)."""
    return f"{get_settings().public_url}console/workbench"


def card_message(*, userid: str, task_id: str, title: str, description: str, due_at: datetime,
                 customers: int, names: list[str]) -> dict:
    """The message/send body (the client fills in agentid)."""
    due = due_at.astimezone(get_settings().tz).strftime("%m-%d %H:%M")
    rows = [{"keyname": "客户", "value": f"{customers} 位"}, {"keyname": "截止", "value": due}]
    rows += [{"keyname": f"客户{i + 1}", "value": name or "（未命名）"} for i, name in enumerate(names[:NAMES_SHOWN])]
    card = {
        "card_type": "button_interaction",
        "source": {"desc": "Siyu 任务"},
        "main_title": {"title": title, "desc": f"请在 {due} 前联系以下客户"},
        "horizontal_content_list": rows,
        "card_action": {"type": 1, "url": workbench_url()},
        "task_id": task_id,
        "button_list": [{"text": "完成", "style": 1, "key": DONE_KEY},
                        {"text": "稍后", "style": 2, "key": LATER_KEY},
                        {"text": "工作台", "style": 3, "type": 1, "url": workbench_url()}],
    }
    if description:
        card["sub_title_text"] = description
    return {"touser": userid, "msgtype": "template_card", "template_card": card}


def done_update(userid: str, response_code: str) -> dict:
    """The message/update_template_card body: the buttons greyed out, reading 已完成."""
    return {"userids": [userid], "response_code": response_code, "button": {"replace_name": DONE_LABEL}}


def reminder_message(*, userid: str, title: str, customers: int) -> dict:
    """The one overdue reminder: a text message to the staff member, linking the workbench."""
    text = f"任务「{title}」已逾期，还有 {customers} 位客户待联系。打开工作台：{workbench_url()}"
    return {"touser": userid, "msgtype": "text", "text": {"content": text}}
