"""Sandbox 在职继承 / 离职继承 APIs: transfer_customer, resigned/transfer_customer and their transfer_result."""
from __future__ import annotations

from bot.sandbox.errors import err, ok
from bot.sandbox.transfer_state import MAX_CUSTOMERS, RESULT_PAGE
from bot.sandbox.wecom_api import WECOM

api = WECOM.api


def _transfer(state, body: dict, resigned: bool) -> dict:
    handover, takeover = body.get("handover_userid"), body.get("takeover_userid")
    exts = body.get("external_userid")
    if not isinstance(exts, list) or not exts or len(exts) > MAX_CUSTOMERS:
        return err("invalid_parameter", f"external_userid: a list of 1 to {MAX_CUSTOMERS}")
    if resigned and handover in state.staff:
        return err("not_resigned", handover)  # "handover_userid必须是已离职用户"
    if not resigned and handover not in state.staff:
        return err("invalid_userid", f"handover_userid {handover}")
    if not state.knows_user(handover) or takeover not in state.staff:
        return err("invalid_userid", f"handover_userid {handover} / takeover_userid {takeover}")
    if handover == takeover:
        return err("same_handover_takeover")
    msg = body.get("transfer_success_msg")
    if msg is not None and (resigned or not isinstance(msg, str) or len(msg) > 200):
        return err("invalid_parameter", "transfer_success_msg: at most 200 characters (在职继承 only)")
    customers = [{"external_userid": ext, "errcode": state.begin_handover(handover, takeover, str(ext), resigned)}
                 for ext in dict.fromkeys(exts)]
    return ok(customer=customers)


def _result(state, body: dict, resigned: bool) -> dict:
    handover, takeover = body.get("handover_userid"), body.get("takeover_userid")
    if not state.knows_user(handover) or not state.knows_user(takeover):
        return err("invalid_userid", f"handover_userid {handover} / takeover_userid {takeover}")
    try:
        start = int(body.get("cursor") or 0)
    except (TypeError, ValueError):
        return err("invalid_parameter", "cursor")
    customers = state.handover_results(handover, takeover, resigned)
    page = customers[start:start + RESULT_PAGE]
    nxt = str(start + RESULT_PAGE) if start + RESULT_PAGE < len(customers) else ""
    return ok(customer=page, next_cursor=nxt)


@api("POST", "externalcontact/transfer_customer")
def transfer_customer(state, body, q):
    return _transfer(state, body, resigned=False)


@api("POST", "externalcontact/resigned/transfer_customer")
def resigned_transfer_customer(state, body, q):
    return _transfer(state, body, resigned=True)


@api("POST", "externalcontact/transfer_result")
def transfer_result(state, body, q):
    return _result(state, body, resigned=False)


@api("POST", "externalcontact/resigned/transfer_result")
def resigned_transfer_result(state, body, q):
    return _result(state, body, resigned=True)
