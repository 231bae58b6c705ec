"""Sandbox routes that play the consumer and WeChat Pay's notifier: pay an order, settle a refund, notify Siyu.

`POST /pay/sandbox/orders/{out_trade_no}/pay` marks a prepaid order paid and POSTs the signed TRANSACTION.SUCCESS
to its notify_url; `POST /pay/sandbox/refunds/{out_refund_no}/notify` POSTs a signed REFUND.* notification
(`{"notify_url"?, "refund_status"?}`: the refund ends now with that status; the notify_url defaults to the refund
call's), and `POST /pay/sandbox/refunds/settle` settles every refund whose time has come (pay_state) and notifies
each. Each answers what Siyu answered. The routes are `def`: the notification
may go to the very server that serves the sandbox, and must not wait on its event loop.
"""
from __future__ import annotations

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from bot.sandbox import callbacks
from bot.sandbox.state import get_state

router = APIRouter()


def _relay(answer) -> JSONResponse:
    return JSONResponse({"notified_status": answer.status_code, "notified_body": answer.text[:500]})


@router.post("/sandbox/orders/{out_trade_no}/pay")
def pay(out_trade_no: str):
    if out_trade_no not in get_state().pay_orders:
        return JSONResponse({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, status_code=404)
    return _relay(callbacks.notify_paid(out_trade_no))


@router.post("/sandbox/refunds/{out_refund_no}/notify")
def refund_notify(out_refund_no: str, notify_url: str | None = Body(None, embed=True),
                  refund_status: str = Body("SUCCESS", embed=True)):
    if out_refund_no not in get_state().pay_refunds:
        return JSONResponse({"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}, status_code=404)
    if refund_status not in ("SUCCESS", "ABNORMAL", "CLOSED"):
        return JSONResponse({"code": "PARAM_ERROR", "message": "refund_status"}, status_code=400)
    return _relay(callbacks.notify_refunded(out_refund_no, notify_url, refund_status))


@router.post("/sandbox/refunds/settle")
def refunds_settle():
    """Settle every PROCESSING refund whose time has come (SUCCESS) and notify each refund call's notify_url."""
    answers = callbacks.settle_refunds()
    return JSONResponse({"settled": len(answers), "notified_status": [a.status_code for a in answers]})
