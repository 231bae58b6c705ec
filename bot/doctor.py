"""Checks of the Tencent channels for `siyu doctor`: one line each, with the fix when one fails.

Every channel check is a real round trip that proves the API answers now: a cheap authenticated call
with the shared token (never a forced token fetch: a new official-account or mini-program token
invalidates the one every other process is using), or, for Pay, a signed query of an order nobody
placed, whose documented ORDER_NOT_EXIST proves both reachability and an accepted signature.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot import clients
from bot.credentials import pay_credentials, wecom_credentials
from bot.errors import PermanentAPIError, TransportError, WeChatAPIError
from config.settings import get_settings

PROBE_ORDER = "siyu-doctor-probe"  # an out_trade_no Siyu never gives an order
SANDBOX_FIX = "is `siyu serve` (or `siyu sandbox`) running at SIYU_PUBLIC_URL?"


@dataclass(frozen=True)
class Check:
    ok: bool
    line: str


def _reason(exc: TransportError) -> str:
    # "ConnectionError: HTTPConnectionPool(… url: /…?access_token=…)": the class alone, never the URL.
    return exc.errmsg.split(":", 1)[0]


def _said(exc: WeChatAPIError) -> str:
    # Tencent's errmsg ends with "more info at https://…?e=40001" and the like: no URL reaches the line.
    return re.sub(r"\s*(more info at\s*)?https?://\S+", "", str(exc.errmsg)).strip(" ,") or "no message"


def _round_trip(name: str, call: Callable, answered: Callable[[object], str], sandbox: bool, base_var: str,
                fix: str) -> Check:
    where = "the sandbox" if sandbox else "Tencent"
    try:
        answer = call()
    except TransportError as exc:
        reach = SANDBOX_FIX if sandbox else f"check {base_var} and the network or proxy between here and it"
        return Check(False, f"{name}: {exc.api} did not answer ({_reason(exc)}) — {reach}")
    except WeChatAPIError as exc:
        return Check(False, f"{name}: {exc.api} refused (errcode {exc.errcode}: {_said(exc)}) — "
                            f"{SANDBOX_FIX if sandbox else fix}")
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        return Check(False, f"{name}: {type(exc).__name__} — {SANDBOX_FIX if sandbox else fix}")
    return Check(True, f"{name}: {where} answers {answered(answer)}")


def _pay_query() -> str:
    try:
        clients.pay_client().query_order(PROBE_ORDER)
    except PermanentAPIError as exc:
        if exc.errcode == "ORDER_NOT_EXIST":
            return "ORDER_NOT_EXIST, as it should"
        raise
    return "an order (unexpected, but signed and answered)"


def _ips(answer: dict) -> str:
    return f"get_api_domain_ip ({len(answer.get('ip_list') or [])} API addresses)"


def run_checks() -> list[Check]:
    """A round trip on each Tencent channel, the callback crypto settings, the Pay keys."""
    settings = get_settings()
    checks = []
    wecom = wecom_credentials(settings)
    base = "SIYU_WECOM_API_BASE"
    checks.append(_round_trip("wecom contact secret", lambda: clients.wecom_client().list_follow_users(),
                              lambda users: f"get_follow_user_list ({len(users)} staff may have customers)",
                              wecom.sandbox, base, "check SIYU_WECOM_CORP_ID / SIYU_WECOM_CONTACT_SECRET"))
    if wecom.agent_secret:
        checks.append(_round_trip("wecom agent", lambda: clients.wecom_client().get_agent(),
                                  lambda app: f"agent/get (app {app.get('name')!r})", wecom.sandbox, base,
                                  "check SIYU_WECOM_AGENT_ID / SIYU_WECOM_AGENT_SECRET (one app's pair)"))
    else:
        checks.append(Check(False, "wecom agent: SIYU_WECOM_AGENT_ID / SIYU_WECOM_AGENT_SECRET unset — "
                                   "staff task cards cannot be sent"))
    ok = bool(wecom.token and wecom.aes_key and len(wecom.aes_key) == 43)
    checks.append(Check(ok, "wecom callback: Token and 43-character EncodingAESKey set" if ok else
                        "wecom callback: SIYU_WECOM_TOKEN / SIYU_WECOM_AES_KEY missing — "
                        "copy them from the app's 接收消息 settings"))
    checks.append(_round_trip("official account", lambda: clients.oa_client().get_api_domain_ip(), _ips,
                              settings.uses_sandbox("official_account"), "SIYU_WECHAT_API_BASE",
                              "check SIYU_OA_APP_ID / SIYU_OA_APP_SECRET and the IP whitelist"))
    checks.append(_round_trip("mini-program", lambda: clients.mp_client().get_api_domain_ip(), _ips,
                              settings.uses_sandbox("miniprogram"), "SIYU_WECHAT_API_BASE",
                              "check SIYU_MP_APP_ID / SIYU_MP_APP_SECRET"))
    checks.extend(_pay_checks(settings))
    return checks


def _pay_checks(settings) -> list[Check]:
    try:
        pay = pay_credentials(settings)
        clients.pay_client()
    except Exception as exc:  # noqa: BLE001
        return [Check(False, f"pay: {type(exc).__name__}: {exc} — check SIYU_PAY_PRIVATE_KEY_PATH")]
    out = [_round_trip(f"pay (merchant {pay.mch_id})", _pay_query, lambda said: f"a signed order query ({said})",
                       pay.sandbox, "SIYU_PAY_API_BASE",
                       "check SIYU_PAY_MCH_ID, SIYU_PAY_CERT_SERIAL and SIYU_PAY_PRIVATE_KEY_PATH (one merchant's)")]
    if not pay.public_key_path:
        out.append(Check(False, "pay notifications: SIYU_PAY_PUBLIC_KEY_PATH unset — they cannot be verified"))
    return out
