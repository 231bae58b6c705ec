"""/webhooks/wechatpay: Pay v3 notifications (payments and refunds), checked, stored in the inbox, then answered."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from config.database import read_scope
from webhooks.intake import accept, raw_body, request_time
from webhooks.metrics import REJECTED
from webhooks.wechatpay.notifications import Refused, open_notification

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
SOURCE = "wechatpay"


def _fail(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    # Pay v3's answer to a notification it must deliver again.
    return JSONResponse({"code": "FAIL", "message": message}, status_code=status, headers=headers)


@router.post("/wechatpay", status_code=200, responses={
    400: {"description": "The body, its resource or its facts (mchid, appid, amount) are not an order of Siyu's"},
    403: {"description": "Wechatpay-Signature, -Timestamp or -Serial does not verify"},
    404: {"description": "No such out_trade_no / out_refund_no"}})
def receive(request: Request, body: bytes = Depends(raw_body), now: float = Depends(request_time)):
    """Verify a Pay v3 notification on its raw body, decrypt it, check it against the order, store it; 200."""
    try:
        with read_scope() as session:
            opened = open_notification(session, request.headers, body, now=now)
    except Refused as exc:
        REJECTED.labels(SOURCE, exc.reason).inc()
        log.warning("callback %s: refused (%s: %s)", SOURCE, exc.reason, exc.message)
        return _fail(exc.status_code, exc.message)
    try:
        accept(SOURCE, opened.plaintext, opened.data)
    except HTTPException as exc:  # the inbox is busy: 503, Tencent delivers again
        return _fail(exc.status_code, str(exc.detail), exc.headers)
    return Response(status_code=200)
