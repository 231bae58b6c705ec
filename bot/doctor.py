"""Checks of the Tencent channels for `siyu doctor`: one line each, with the fix when one fails."""
from __future__ import annotations

from dataclasses import dataclass

from bot.errors import WeChatAPIError


@dataclass(frozen=True)
class Check:
    ok: bool
    line: str


def _token_check(name: str, fetch, sandbox: bool, fix: str) -> Check:
    where = "sandbox" if sandbox else "Tencent"
    try:
        fetch()
        return Check(True, f"{name}: access token fetched from the {where}")
    except WeChatAPIError as exc:
        return Check(False, f"{name}: token fetch failed (errcode {exc.errcode}: {exc.errmsg}) — {fix}")
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        return Check(False, f"{name}: {type(exc).__name__}: {exc} — {fix}")


def run_checks() -> list[Check]:
    """Token fetches of each channel, the callback crypto settings, the Pay keys."""
    from bot import clients
    from bot.credentials import pay_credentials, wecom_credentials
    from config.settings import get_settings

    settings = get_settings()
    checks = []
    wecom = wecom_credentials(settings)
    sandbox_hint = "is `siyu serve` running at SIYU_PUBLIC_URL?"
    checks.append(_token_check("wecom contact secret", lambda: clients.wecom_client().access_token(), wecom.sandbox,
                               sandbox_hint if wecom.sandbox else "check SIYU_WECOM_CORP_ID / SIYU_WECOM_CONTACT_SECRET"))
    if wecom.agent_secret:
        checks.append(_token_check("wecom agent", lambda: clients.wecom_client().agent.access_token, wecom.sandbox,
                                   sandbox_hint if wecom.sandbox else "check SIYU_WECOM_AGENT_SECRET"))
    else:
        checks.append(Check(False, "wecom agent: SIYU_WECOM_AGENT_ID / SIYU_WECOM_AGENT_SECRET unset — staff task cards cannot be sent"))
    ok = bool(wecom.token and wecom.aes_key and len(wecom.aes_key) == 43)
    checks.append(Check(ok, "wecom callback: Token and 43-character EncodingAESKey set" if ok else
                        "wecom callback: SIYU_WECOM_TOKEN / SIYU_WECOM_AES_KEY missing — copy them from the app's 接收消息 settings"))
    oa_sb, mp_sb = settings.uses_sandbox("official_account"), settings.uses_sandbox("miniprogram")
    checks.append(_token_check("official account", lambda: clients.oa_client().access_token(), oa_sb,
                               sandbox_hint if oa_sb else "check SIYU_OA_APP_ID / SIYU_OA_APP_SECRET and the IP whitelist"))
    checks.append(_token_check("mini-program", lambda: clients.mp_client().access_token(), mp_sb,
                               sandbox_hint if mp_sb else "check SIYU_MP_APP_ID / SIYU_MP_APP_SECRET"))
    try:
        pay = pay_credentials(settings)
        clients.pay_client()
        if pay.public_key_path:
            checks.append(Check(True, f"pay: merchant {pay.mch_id} keys load{' (sandbox)' if pay.sandbox else ''}"))
        else:
            checks.append(Check(False, "pay: SIYU_PAY_PUBLIC_KEY_PATH unset — notifications cannot be verified"))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check(False, f"pay: {type(exc).__name__}: {exc} — check SIYU_PAY_PRIVATE_KEY_PATH"))
    return checks
