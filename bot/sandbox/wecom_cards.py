"""Sandbox WeCom template cards (模板卡片消息) as WeCom documents them.

- message/send `template_card`: a callback card (button_interaction, vote_interaction, multiple_interaction)
  needs a `task_id` — unique per app, at most 128 bytes of digits, letters and `_-@` (42014 otherwise) — and
  a button_interaction card 1 to 6 buttons, each a callback `key` (≤ 1,024 bytes) or a `url` (type 1); it is
  answered with a `response_code`.
- Every response_code (the send's, and the one each click callback carries) may be used for one
  update_template_card call, within 72 hours.
- A click (`click`) is what a staff member's tap does: it names a button of a card they received and gets a
  fresh response_code for the template_card_event callback. A card whose buttons were replaced takes no clicks.
"""
from __future__ import annotations

import re

from bot.sandbox.errors import err

CALLBACK_CARDS = ("button_interaction", "vote_interaction", "multiple_interaction")
CARD_TYPES = ("text_notice", "news_notice", *CALLBACK_CARDS)
TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]+$")
TASK_ID_MAX_BYTES = 128
BUTTONS_MAX = 6
KEY_MAX_BYTES = 1024
HORIZONTAL_MAX = 6
RESPONSE_CODE_TTL = 72 * 3600  # seconds, and usable once
UPDATE_USERIDS_MAX = 1000


def _task_id_refusal(state, task_id) -> dict | None:
    if (not isinstance(task_id, str) or not task_id or len(task_id.encode()) > TASK_ID_MAX_BYTES
            or not TASK_ID.match(task_id) or task_id in state.task_cards):
        return err("task_id_taken", f"{task_id!r}")
    return None


def _buttons_refusal(buttons) -> dict | None:
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= BUTTONS_MAX:
        return err("invalid_parameter", f"button_list: 1 to {BUTTONS_MAX} buttons")
    keys = []
    for b in buttons:
        if not isinstance(b, dict) or not b.get("text"):
            return err("invalid_parameter", "button_list.text is required")
        if int(b.get("type") or 0) == 1:
            if not b.get("url"):
                return err("invalid_parameter", "button_list.url is required when type is 1")
            continue
        key = b.get("key")
        if not isinstance(key, str) or not key or len(key.encode()) > KEY_MAX_BYTES:
            return err("invalid_parameter", f"button_list.key: 1 to {KEY_MAX_BYTES} bytes")
        keys.append(key)
    if len(set(keys)) != len(keys):
        return err("invalid_parameter", "button_list.key must be unique")
    return None


def card_refusal(state, card) -> dict | None:
    """WeCom's answer to a template_card it would refuse, or None."""
    if not isinstance(card, dict) or card.get("card_type") not in CARD_TYPES:
        return err("invalid_parameter", "template_card.card_type")
    kind = card["card_type"]
    title = (card.get("main_title") or {}).get("title") if isinstance(card.get("main_title"), dict) else None
    if not title and not card.get("sub_title_text"):
        return err("invalid_parameter", "main_title.title or sub_title_text is required")
    if len(card.get("horizontal_content_list") or []) > HORIZONTAL_MAX:
        return err("invalid_parameter", f"horizontal_content_list: at most {HORIZONTAL_MAX}")
    if kind in CALLBACK_CARDS or card.get("action_menu"):
        if refused := _task_id_refusal(state, card.get("task_id")):
            return refused
    if kind == "button_interaction":
        return _buttons_refusal(card.get("button_list"))
    if kind == "text_notice" and not card.get("card_action"):
        return err("invalid_parameter", "card_action is required for text_notice")
    return None


def issue_code(state, task_id: str, userid: str | None = None) -> str:
    """A response_code for one update_template_card of this card, valid 72 hours."""
    code = state.new_id("", 40)
    state.cards[code] = {"task_id": task_id, "userid": userid, "issued_at": state.now(), "used": False}
    return code


def sent(state, card: dict, record: dict) -> str | None:
    """Keep a sent card; its response_code when it is a callback card."""
    task_id = card.get("task_id")
    if not task_id:
        return None
    state.task_cards[task_id] = {"message": record, "replaced": None, "updates": [], "clicks": []}
    return issue_code(state, task_id) if card["card_type"] in CALLBACK_CARDS else None


def update(state, body: dict) -> dict | None:
    """Apply update_template_card; WeCom's refusal, or None."""
    code = state.cards.get(body.get("response_code") or "")
    if code is None or code["used"] or state.now() - code["issued_at"] > RESPONSE_CODE_TTL:
        return err("invalid_parameter", "response_code is unknown, used, or older than 72 hours")
    userids = body.get("userids") or []
    if not (userids or body.get("partyids") or body.get("tagids") or body.get("atall")):
        return err("invalid_parameter", "userids, partyids, tagids or atall is required")
    if len(userids) > UPDATE_USERIDS_MAX:
        return err("invalid_parameter", f"userids: at most {UPDATE_USERIDS_MAX}")
    card = state.task_cards[code["task_id"]]
    button, new = body.get("button"), body.get("template_card")
    if not button and not new:
        return err("invalid_parameter", "button or template_card is required")
    if button is not None:
        if card["message"]["template_card"]["card_type"] not in CALLBACK_CARDS:
            return err("invalid_parameter", "button: only a callback card's buttons can be replaced")
        if not isinstance(button, dict) or not button.get("replace_name"):
            return err("invalid_parameter", "button.replace_name is required")
        card["replaced"] = button["replace_name"]
    code["used"] = True
    card["updates"].append(body)
    return None


def click(state, userid: str, task_id: str, key: str) -> str:
    """A staff member taps button `key` on card `task_id`: the click's response_code (ValueError if impossible)."""
    with state.lock:
        card = state.task_cards.get(task_id)
        if card is None or userid not in card["message"]["delivered_to"]:
            raise ValueError(f"{userid} has no card {task_id}")
        if card["replaced"] is not None:
            raise ValueError(f"card {task_id} reads {card['replaced']!r}: its buttons take no clicks")
        keys = [b.get("key") for b in card["message"]["template_card"].get("button_list") or []]
        if key not in keys:
            raise ValueError(f"card {task_id} has no button {key!r}")
        card["clicks"].append({"userid": userid, "key": key, "at": state.now()})
        return issue_code(state, task_id, userid)
