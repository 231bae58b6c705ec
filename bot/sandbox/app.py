"""The sandbox's FastAPI app: WeCom under /wecom/cgi-bin/ (its sign-in page under /open/), OA and MP under
/wechat/, Pay under /pay/.

The main app mounts it at /sandbox when SIYU_SANDBOX=auto; `siyu sandbox --port` serves it alone.
"""
from __future__ import annotations

import os

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from bot.sandbox import transfer_api, wecom_messages_api, wecom_oauth_api  # noqa: F401  (register their routes in WECOM)
from bot.sandbox.routing import json_body
from bot.sandbox.wecom_api import WECOM


def _json(payload: dict) -> JSONResponse:
    # Tencent answers errors with HTTP 200 and the errcode in the body.
    return JSONResponse(payload, media_type="application/json; charset=utf-8")


def create_sandbox_app() -> FastAPI:
    """A new sandbox app over the process's sandbox state."""
    app = FastAPI(title="Siyu sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    @app.api_route("/wecom/cgi-bin/{path:path}", methods=["GET", "POST"])
    def wecom(path: str, request: Request, body: dict = Depends(json_body)):
        return _json(WECOM.dispatch(request.method, path, body, dict(request.query_params)))

    app.include_router(wecom_oauth_api.router, prefix="/open")  # open.weixin.qq.com's authorize page
    _mount_wechat(app)
    _mount_pay(app)

    @app.get("/healthz")
    def healthz():
        # The process that answered: a client keeping its connection can tell `siyu serve` workers apart.
        return {"status": "ok", "pid": os.getpid()}

    return app


def _mount_wechat(app: FastAPI) -> None:
    from bot.sandbox.wechat_api import WECHAT

    @app.api_route("/wechat/{path:path}", methods=["GET", "POST"])
    def wechat(path: str, request: Request, body: dict = Depends(json_body)):
        return _json(WECHAT.dispatch(request.method, path, body, dict(request.query_params)))


def _mount_pay(app: FastAPI) -> None:
    from bot.sandbox import pay_notify_api
    from bot.sandbox.pay_api import router

    app.include_router(router, prefix="/pay")
    app.include_router(pay_notify_api.router, prefix="/pay")
