"""Sandbox WeChat Pay v3: JSAPI orders, query, close, refunds; signed answers; signature checks on requests."""
from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from bot import pay_crypto as pc
from bot.credentials import sandbox_pay_credentials
from bot.sandbox.pay_state import REFUND_SETTLES_AFTER, _rfc3339
from bot.sandbox.store import shared
from config.settings import get_settings

router = APIRouter()


def _keys():
    creds = sandbox_pay_credentials(get_settings())
    merchant_pub = pc.load_private_key(creds.private_key_path).public_key()
    platform_key = pc.load_private_key(creds.private_key_path.replace("pay_merchant_key", "pay_platform_key"))
    return creds, merchant_pub, platform_key


def _answer(status: int, payload: dict | None) -> Response:
    creds, _, platform_key = _keys()
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() if payload is not None else b""
    headers = pc.response_headers(platform_key, creds.public_key_id, body) if body else {}
    return Response(body, status_code=status, media_type="application/json" if body else None, headers=headers)


def _fail(status: int, code: str, message: str) -> Response:
    return _answer(status, {"code": code, "message": message})


async def _checked(request: Request) -> tuple[dict | None, Response | None]:
    """The JSON body of a request whose merchant signature verifies, or the error answer."""
    raw = await request.body()
    creds, merchant_pub, _ = _keys()
    auth = pc.parse_authorization(request.headers.get("authorization", ""))
    path_query = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not auth or auth.get("mchid") != creds.mch_id:
        return None, _fail(401, "SIGN_ERROR", "missing or foreign Authorization")
    message = pc.request_message(request.method, path_query, auth.get("timestamp", ""),
                                 auth.get("nonce_str", ""), raw.decode())
    if not pc.rsa_verify(merchant_pub, message, auth.get("signature", "")):
        return None, _fail(401, "SIGN_ERROR", "signature does not verify")
    try:
        return (json.loads(raw) if raw else {}), None
    except ValueError:
        return None, _fail(400, "PARAM_ERROR", "body is not JSON")


def _public(order: dict) -> dict:
    return {k: v for k, v in order.items() if not k.startswith("_")}


@router.post("/v3/pay/transactions/jsapi")
async def jsapi(request: Request):
    body, refused = await _checked(request)
    if refused:
        return refused
    amount = (body.get("amount") or {}).get("total")
    no = body.get("out_trade_no") or ""
    if not (body.get("appid") and no and body.get("description") and body.get("notify_url")
            and isinstance(amount, int) and amount > 0 and (body.get("payer") or {}).get("openid")):
        return _fail(400, "PARAM_ERROR", "appid, description, out_trade_no, notify_url, amount.total, payer.openid")
    with shared() as state:
        order = state.pay_orders.get(no)
        if order is not None:
            if order["amount"]["total"] != amount or order["trade_state"] != "NOTPAY":
                return _fail(400, "INVALID_REQUEST", "out_trade_no already used with other parameters or paid")
            return _answer(200, {"prepay_id": order["_prepay_id"]})
        prepay_id = state.new_id("wx", 32)
        state.pay_orders[no] = {
            "appid": body["appid"], "mchid": body.get("mchid"), "out_trade_no": no, "trade_type": "JSAPI",
            "trade_state": "NOTPAY", "trade_state_desc": "订单未支付", "bank_type": "OTHERS",
            "attach": body.get("attach", ""), "payer": {"openid": body["payer"]["openid"]},
            "amount": {"total": amount, "payer_total": amount, "currency": "CNY", "payer_currency": "CNY"},
            "_prepay_id": prepay_id, "_notify_url": body["notify_url"], "_description": body["description"],
        }
    return _answer(200, {"prepay_id": prepay_id})


@router.get("/v3/pay/transactions/out-trade-no/{out_trade_no}")
async def query(out_trade_no: str, request: Request):
    _, refused = await _checked(request)
    if refused:
        return refused
    with shared() as state:
        order = state.pay_orders.get(out_trade_no)
    if order is None:
        return _fail(404, "ORDER_NOT_EXIST", "订单不存在")
    return _answer(200, _public(order))


@router.post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close")
async def close(out_trade_no: str, request: Request):
    _, refused = await _checked(request)
    if refused:
        return refused
    with shared() as state:
        order = state.pay_orders.get(out_trade_no)
        if order is None:
            return _fail(404, "ORDER_NOT_EXIST", "订单不存在")
        if order["trade_state"] == "SUCCESS":
            return _fail(400, "ORDERPAID", "订单已支付")
        order["trade_state"], order["trade_state_desc"] = "CLOSED", "订单已关闭"
    return _answer(204, None)


@router.post("/v3/refund/domestic/refunds")
async def refund(request: Request):
    body, refused = await _checked(request)
    if refused:
        return refused
    amount = body.get("amount") or {}
    with shared() as state:
        state.pay_refund_calls.append(str(body.get("out_refund_no") or ""))
        answer = _refund(state, body, amount)
        if answer.status_code == 200 and state.take_lost_answer("pay/refund"):
            return _fail(504, "SYSTEM_ERROR", "系统超时")  # carried out; the answer is lost on the way back
    return answer


def _refund(state, body: dict, amount: dict) -> Response:
    """Carry out one refund call (WeChat Pay's rules), under the sandbox's lock."""
    order = state.pay_orders.get(body.get("out_trade_no") or "")
    if order is None:
        return _fail(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    if order["trade_state"] not in ("SUCCESS", "REFUND"):
        return _fail(403, "NOT_ENOUGH", "订单未支付")
    existing = state.pay_refunds.get(body.get("out_refund_no") or "")
    if existing is not None:  # the same out_refund_no again: the same refund, never a second one
        return _answer(200, _public(existing))
    done = sum(r["amount"]["refund"] for r in state.pay_refunds.values()
               if r["out_trade_no"] == order["out_trade_no"])
    total_ok = amount.get("total") == order["amount"]["total"]
    if not total_ok or not 0 < int(amount.get("refund") or 0) <= amount["total"] - done:
        return _fail(400, "PARAM_ERROR", "amount.refund exceeds what is left, or amount.total is wrong")
    rec = {"refund_id": "50" + state.new_id("", 30), "out_refund_no": body["out_refund_no"],
           "transaction_id": order["transaction_id"], "out_trade_no": order["out_trade_no"],
           "channel": "ORIGINAL", "user_received_account": "支付用户零钱", "status": "PROCESSING",
           "create_time": _rfc3339(state.now()),
           "amount": {"total": amount["total"], "refund": amount["refund"], "payer_total": amount["total"],
                      "payer_refund": amount["refund"], "currency": "CNY"},
           "_settle_at": state.now() + REFUND_SETTLES_AFTER, "_notify_url": body.get("notify_url")}
    state.pay_refunds[rec["out_refund_no"]] = rec
    order["trade_state"], order["trade_state_desc"] = "REFUND", "转入退款"
    return _answer(200, _public(rec))


@router.get("/v3/refund/domestic/refunds/{out_refund_no}")
async def refund_query(out_refund_no: str, request: Request):
    _, refused = await _checked(request)
    if refused:
        return refused
    with shared() as state:
        rec = state.refund_view(out_refund_no)
    return _answer(200, rec) if rec else _fail(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
