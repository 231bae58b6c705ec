"""Sandbox WeCom web sign-in (网页授权登录): the authorize page staff pass through, and auth/getuserinfo.

WeCom's rules kept here: `appid` is the corp id, `scope` is snsapi_base or snsapi_privateinfo (which needs an
`agentid`), a code is usable once and for five minutes (40029 otherwise), and getuserinfo takes the app's token.
"""
from __future__ import annotations

import html
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from bot.sandbox.errors import err, ok
from bot.sandbox.state import get_state
from bot.sandbox.wecom_api import api

SCOPES = ("snsapi_base", "snsapi_privateinfo")
router = APIRouter()


@api("GET", "auth/getuserinfo")
def getuserinfo(state, body, q):
    token = state.tokens.get(q.get("access_token", ""))
    if token is None or token.secret != state.agent_secret:  # the app's token, not the 客户联系 secret's
        return err("agent_mismatch")
    grant = state.oauth_codes.pop(q.get("code", ""), None)  # used once, whatever the answer
    if grant is None or grant["expires_at"] <= state.now():
        return err("invalid_code")
    return ok(userid=grant["userid"])


def _refuse(reason: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><title>企业微信</title><p>{html.escape(reason)}</p>", status_code=400)


@router.get("/connect/oauth2/authorize")
def authorize(request: Request, appid: str = "", redirect_uri: str = "", response_type: str = "",
              scope: str = "", state: str = "", agentid: str = "", userid: str = ""):
    """WeCom's authorize page: in the WeCom app it passes the signed-in member on; here one picks who that is."""
    sandbox = get_state()
    if appid != sandbox.corp_id:
        return _refuse("appid 参数错误 (40013 invalid corpid)")
    if response_type != "code" or scope not in SCOPES:
        return _refuse("scope 或 response_type 参数错误")
    if scope == "snsapi_privateinfo" and agentid != sandbox.agent_id:
        return _refuse("snsapi_privateinfo 需要 agentid")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _refuse("redirect_uri 参数错误")
    if userid:
        if userid not in sandbox.staff:
            return _refuse("该成员不在企业中 (60111 userid not found)")
        code = sandbox.issue_oauth_code(userid)
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode({'code': code, 'state': state})}", status_code=302)
    base = {k: v for k, v in request.query_params.items() if k != "userid"}
    links = "".join(f'<li><a href="?{html.escape(urlencode({**base, "userid": u}))}">{html.escape(s["name"])} '
                    f"({html.escape(u)})</a></li>" for u, s in sorted(sandbox.staff.items()))
    return HTMLResponse("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
                        f"<title>企业微信 沙箱登录</title><h1>选择登录的成员</h1><ul>{links}</ul>")
