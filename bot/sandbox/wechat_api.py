"""Sandbox official-account and mini-program APIs (both live on api.weixin.qq.com)."""
from __future__ import annotations

from bot.miniprogram import SUBSCRIBE_VALUE_LIMITS
from bot.sandbox.errors import err, ok
from bot.sandbox.routing import Table
from bot.sandbox.wechat_state import RISKY_WORDS


def _app_of(state, path: str) -> str:
    # Paths only the mini-program calls take its token; the rest are the official account's.
    mp_paths = ("wxa/", "sns/jscode2session", "cgi-bin/message/subscribe/send")
    return state.mp_app_id if path.startswith(mp_paths) else state.oa_app_id


WECHAT = Table("wechat", _app_of)
api = WECHAT.api


@api("GET", "cgi-bin/token", auth=False)
def token(state, body, q):
    apps = {state.oa_app_id: state.oa_secret, state.mp_app_id: state.mp_secret}
    appid = q.get("appid")
    if appid not in apps:
        return err("invalid_appid")
    if q.get("secret") != apps[appid] or q.get("grant_type") != "client_credential":
        return err("invalid_secret")
    value, expires_in = state.issue_token(appid, q["secret"])
    return {"access_token": value, "expires_in": expires_in}


# -- official account -------------------------------------------------------------------------------
@api("GET", "cgi-bin/user/info")
def user_info(state, body, q):
    follower = state.oa_followers.get(q.get("openid", ""))
    return dict(follower) if follower else err("invalid_openid")


@api("POST", "cgi-bin/qrcode/create")
def qrcode_create(state, body, q):
    action = body.get("action_name")
    scene = (body.get("action_info") or {}).get("scene") or {}
    scene_str = scene.get("scene_str") or str(scene.get("scene_id", ""))
    if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE") or not scene_str:
        return err("invalid_parameter", "action_name / scene")
    if len(scene_str) > 64:
        return err("invalid_parameter", "scene_str is 1 to 64 characters")
    ticket = state.new_id("gQ", 40)
    expire = int(body.get("expire_seconds") or 60) if "LIMIT" not in action else None
    state.oa_qrcodes[ticket] = {"scene_str": scene_str, "expire_seconds": expire}
    answer = {"ticket": ticket, "url": f"http://weixin.qq.com/q/{ticket[:20]}"}
    if expire:
        answer["expire_seconds"] = expire
    return answer


TEMPLATE_VALUE_MAX = 200  # an old-style keyword (first, keyword1, remark…) has no kind to limit it by


def _template_data_refused(data, keywords: tuple[str, ...]) -> dict | None:
    if not isinstance(data, dict) or not data:
        return err("argument_invalid", "data")
    for key, entry in data.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        limit = SUBSCRIBE_LIMITS.get(key.rstrip("0123456789"), TEMPLATE_VALUE_MAX)
        if (keywords and key not in keywords) or not isinstance(value, str) or len(value) > limit:
            return err("argument_invalid", f"data.{key}.value")
    return None


def _page_refused(state, page) -> dict | None:
    """41030 for a page the published mini-program does not have (the query after `?` is free)."""
    if page is None:
        return None
    path = str(page).split("?", 1)[0].removesuffix(".html")
    return None if path in state.mp_pages else err("invalid_page", str(page)[:80])


@api("POST", "cgi-bin/message/template/send")
def template_send(state, body, q):
    openid = body.get("touser", "")
    follower = state.oa_followers.get(openid)
    if follower is None:
        return err("invalid_openid")
    if not follower.get("subscribe"):
        return err("not_subscribed")
    keywords = state.oa_templates.get(body.get("template_id") or "")
    if keywords is None:
        return err("invalid_template")
    refused = _template_data_refused(body.get("data"), keywords)
    if refused:
        return refused
    mini = body.get("miniprogram")
    if mini is not None:
        if not isinstance(mini, dict) or mini.get("appid") != state.mp_app_id:
            return err("invalid_appid", "miniprogram.appid")
        refused = _page_refused(state, mini.get("pagepath"))
        if refused:
            return refused
    cmid = body.get("client_msg_id")
    if cmid and (openid, cmid) in state.oa_client_msg_ids:
        return ok(msgid=state.oa_client_msg_ids[(openid, cmid)])  # the repeat is dropped, the first msgid answered
    msgid = len(state.oa_template_sends) + 1000000001
    state.oa_template_sends.append({**body, "msgid": msgid})
    if cmid:
        state.oa_client_msg_ids[(openid, cmid)] = msgid
    fate = "failed:user block" if openid in state.oa_blocked else "success"
    state.oa_template_results.append((openid, msgid, fate))  # pushed later as TEMPLATESENDJOBFINISH
    return ok(msgid=msgid)


@api("POST", "cgi-bin/message/subscribe/bizsend")
def subscribe_bizsend(state, body, q):
    if not body.get("template_id") or not body.get("touser"):
        return err("invalid_parameter", "touser and template_id are required")
    if body["touser"] not in state.oa_followers:
        return err("invalid_openid")
    state.oa_bizsends.append(body)
    return ok()


# Customer-service messages: one path for both apps, so the token, not the path, says which app sends.
CUSTOM_MSGTYPES = {
    "oa": {"text", "image", "voice", "video", "music", "news", "mpnews", "msgmenu", "wxcard", "miniprogrampage"},
    "mp": {"text", "image", "link", "miniprogrampage"},
}


def _app_by_token(state, q) -> tuple[str | None, dict | None]:
    """("oa" | "mp", None) for a live token of either app, else (None, Tencent's error answer)."""
    tok = state.tokens.get(q.get("access_token") or "")
    apps = {state.oa_app_id: "oa", state.mp_app_id: "mp"}
    if tok is None or tok.app not in apps or state.reject_all_tokens:
        return None, err("missing_token") if not q.get("access_token") else err("invalid_token")
    if tok.expires_at <= state.now():
        return None, err("expired_token")
    return apps[tok.app], None


# Both apps may ask which addresses api.weixin.qq.com answers from: the token says which app asks.
API_DOMAIN_IPS = ["101.89.47.18", "101.91.34.103", "109.244.129.223", "112.60.20.154"]


@api("GET", "cgi-bin/get_api_domain_ip", auth=False)
def get_api_domain_ip(state, body, q):
    _, refused = _app_by_token(state, q)
    return refused or {"ip_list": list(API_DOMAIN_IPS)}  # Tencent answers this one without errcode


@api("POST", "cgi-bin/message/custom/send", auth=False)
def custom_send(state, body, q):
    app, refused = _app_by_token(state, q)
    if refused:
        return refused
    openid, msgtype = body.get("touser", ""), body.get("msgtype")
    known = state.oa_followers.get(openid, {}).get("subscribe") if app == "oa" else openid in state.mp_users
    if not known:
        return err("invalid_openid")
    if msgtype not in CUSTOM_MSGTYPES[app]:
        return err("invalid_msgtype", str(msgtype))
    content = body.get(msgtype)
    if not isinstance(content, dict) or not content:
        return err("invalid_parameter", f"{msgtype} is required")
    if msgtype == "text" and not content.get("content"):
        return err("invalid_parameter", "text.content is required")
    if msgtype == "miniprogrampage" and not (content.get("title") and content.get("pagepath")
                                             and content.get("thumb_media_id")):
        return err("invalid_parameter", "miniprogrampage needs title, pagepath and thumb_media_id")
    state.custom_sends.append({**body, "app": app})
    return ok()


# -- mini-program ---------------------------------------------------------------------------------------
@api("GET", "sns/jscode2session", auth=False)
def jscode2session(state, body, q):
    if not q.get("appid"):
        return err("missing_appid")
    if q.get("appid") != state.mp_app_id:
        return err("invalid_appid")
    if q.get("secret") != state.mp_secret:
        return err("invalid_secret")
    if q.get("grant_type") != "authorization_code":
        return err("invalid_grant_type")
    if not q.get("js_code"):
        return err("missing_code")
    # Tencent: an unknown or expired code is 40029, one redeemed before is 40163.
    rec, refused = state.redeem_code(state.mp_login_codes, q["js_code"])
    if rec is None:
        return err(refused)
    user = state.mp_users[rec["openid"]]
    return {k: user[k] for k in ("openid", "session_key", "unionid") if k in user}


@api("POST", "wxa/business/getuserphonenumber")
def getuserphonenumber(state, body, q):
    if body.get("__invalid_json__"):
        return err("invalid_json")
    # Tencent documents one errcode for a phone code that is unknown, expired or used before: 40029.
    rec = state.take_code(state.mp_phone_codes, str(body.get("code") or ""))
    if rec is None:
        return err("invalid_code")
    phone, country = rec["phone"], rec["country_code"]
    return ok(phone_info={"phoneNumber": phone if country == "86" else f"+{country}{phone}",
                          "purePhoneNumber": phone, "countryCode": country,
                          "watermark": {"timestamp": int(state.now()), "appid": state.mp_app_id}})


SUBSCRIBE_LIMITS = SUBSCRIBE_VALUE_LIMITS  # 47003 "argument invalid" beyond them


def _subscribe_data_refused(data) -> dict | None:
    if not isinstance(data, dict) or not data:
        return err("argument_invalid", "data")
    for key, entry in data.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        kind = key.rstrip("0123456789")
        if not isinstance(value, str) or not value or kind not in SUBSCRIBE_LIMITS \
                or len(value) > SUBSCRIBE_LIMITS[kind]:
            return err("argument_invalid", f"data.{key}.value")
    return None


@api("POST", "cgi-bin/message/subscribe/send")
def subscribe_send(state, body, q):
    openid, template_id = body.get("touser", ""), body.get("template_id", "")
    if openid not in state.mp_users:
        return err("invalid_openid")
    if not template_id:
        return err("invalid_template")
    refused = _subscribe_data_refused(body.get("data")) or _page_refused(state, body.get("page"))
    if refused:
        return refused
    if state.mp_grants[(openid, template_id)] <= 0:
        return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
    state.mp_grants[(openid, template_id)] -= 1  # a grant is good for one message
    state.mp_subscribe_sends.append(body)
    return ok(msgid=len(state.mp_subscribe_sends))


@api("POST", "wxa/msg_sec_check")
def msg_sec_check(state, body, q):
    if body.get("version") != 2 or not body.get("openid") or body.get("scene") not in (1, 2, 3, 4):
        return err("invalid_parameter", "version 2 needs openid and scene 1-4")
    risky = [w for w in RISKY_WORDS if w in (body.get("content") or "")]
    suggest, label = ("risky", 20006) if risky else ("pass", 100)
    detail = [{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label,
               **({"keyword": risky[0]} if risky else {})}]
    return ok(result={"suggest": suggest, "label": label}, detail=detail,
              trace_id=state.new_id("", 24))
