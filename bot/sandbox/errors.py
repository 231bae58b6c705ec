"""The error answers the sandbox gives, with the errcodes Tencent documents for them."""
from __future__ import annotations

ERRORS: dict[str, tuple[int, str]] = {
    "busy": (-1, "system busy"),
    "invalid_secret": (40001, "invalid credential, access_token is invalid or not latest"),
    "invalid_corpid": (40013, "invalid corpid"),
    "invalid_appid": (40013, "invalid appid"),
    "invalid_token": (40014, "invalid access_token"),
    "invalid_code": (40029, "invalid code"),
    "invalid_parameter": (40058, "invalid parameter"),
    "invalid_userid": (60111, "userid not found"),
    "invalid_external_userid": (40096, "invalid external userid"),
    "invalid_msgid": (41063, "invalid msgid"),
    "invalid_welcome_code": (41051, "invalid welcome_code: expired or already used"),
    "missing_token": (41001, "access_token missing"),
    "expired_token": (42001, "access_token expired"),
    "code_used": (40163, "code been used"),
    "missing_appid": (41002, "appid missing"),
    "missing_code": (41008, "missing code"),
    "invalid_grant_type": (40002, "invalid grant_type"),
    "invalid_json": (47001, "data format error"),
    "argument_invalid": (47003, "argument invalid!"),
    "freq_limit": (45009, "api freq out of limit"),
    "concurrency_limit": (45033, "api concurrent out of limit"),
    "not_friend": (84061, "not external contact"),
    "invalid_config_id": (41044, "invalid config_id"),
    "not_subscribed": (43004, "require subscribe"),
    "invalid_template": (40037, "invalid template_id"),
    "invalid_page": (41030, "invalid page: not a page of the published mini-program"),
    "invalid_chat_id": (40050, "invalid chatid"),
    "invalid_openid": (40003, "invalid openid"),
    "invalid_agentid": (40056, "invalid agentid"),
    "invalid_msgtype": (40008, "invalid message type"),
    "agent_mismatch": (301002, "not allow operate another agent with this accesstoken"),
    "not_resigned": (40097, "handover user is not resigned"),
    "same_handover_takeover": (40130, "handover and takeover user are the same"),
    "task_id_taken": (42014, "taskid has existed or empty or exceed max len"),
}


def ok(**fields) -> dict:
    """Tencent's success answer with extra fields."""
    return {"errcode": 0, "errmsg": "ok", **fields}


def err(name: str, detail: str | None = None) -> dict:
    """Tencent's error answer for `name` in ERRORS."""
    code, msg = ERRORS[name]
    return {"errcode": code, "errmsg": f"{msg}: {detail}" if detail else msg}


def err_code(code: int, msg: str = "injected error") -> dict:
    """An error answer with a given errcode (fault injection)."""
    return {"errcode": code, "errmsg": msg}
