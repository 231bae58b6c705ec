"""Redaction of free text (error messages, tracebacks, log lines, URLs): no secret and no full phone number survives.

The ground floor owns the mechanism so that every floor above can apply it where text leaves the process
or is stored; `bot.errors.scrub` applies it where Tencent API errors are made, so their messages are
clean before anyone prints them. What counts as secret: the value of any key named in SECRET_KEYS (in a
query string, a form body, JSON or a Python repr), a bearer token, a URL's password, and any long run of
token-looking characters; phone numbers are masked like `+86138****8000`.
"""
from __future__ import annotations

import re

MASK = "***"

# Query, form and JSON keys whose values are secrets or single-use grants, as Tencent and Siyu name them.
SECRET_KEYS = frozenset({
    "access_token", "accesstoken", "refresh_token", "id_token",
    "corpsecret", "secret", "appsecret", "app_secret", "contact_secret", "agent_secret",
    "suite_secret", "suite_access_token", "suite_ticket", "provider_secret", "provider_access_token",
    "component_appsecret", "component_access_token", "component_verify_ticket",
    "authorizer_access_token", "authorizer_refresh_token", "permanent_code", "pre_auth_code", "auth_code",
    "js_code", "code", "session_key", "jsapi_ticket", "ticket_secret",
    "apiv3_key", "api_v3_key", "apikey", "api_key", "private_key", "aes_key", "encodingaeskey",
    "token", "password", "passwd", "admin_token", "secret_key",
})

# Keys that stay secret with any prefix (`wecom_contact_secret`, `pay_apiv3_key`); `status_code` is no secret.
SECRET_SUFFIXES = frozenset({"secret", "token", "password", "passwd", "aes_key", "apiv3_key", "api_v3_key", "api_key",
                             "private_key", "secret_key"})


def _alternation(words) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


_KEY = rf"(?:[A-Za-z0-9]+_)+(?:{_alternation(SECRET_SUFFIXES)})|(?:{_alternation(SECRET_KEYS)})"
# key=value (URLs, form bodies, dataclass reprs): the value runs to the next separator, or is quoted.
_KV = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_KEY})=(?:(['\"])(?:(?!\2).)*\2|[^&\s'\"<>#,;)\]}}]+)")
# "key": "value" (JSON) and 'key': 'value' (Python reprs of dicts).
_QUOTED = re.compile(rf"(?i)([\"'])({_KEY})\1(\s*:\s*)([\"'])(?:\\.|(?!\4).)*\4")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s/]+@")
# Access tokens, session keys, API keys: 40+ URL-safe characters mixing upper case, lower case and digits.
# Hex digests, ids and words are not mixed-case, so they stay readable.
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[A-Z])"
                         r"[A-Za-z0-9_-]{40,}(?![A-Za-z0-9_-])")
# Mainland mobiles with or without +86, and any other E.164 number.
_CN_MOBILE = re.compile(r"(?<![\w+])((?:\+?86[- ]?)?1[3-9]\d)\d{4}(\d{4})(?!\w)")
_E164 = re.compile(r"(?<![\w+])(\+[1-9]\d{2,6})\d{4}(\d{4})(?!\w)")


def mask_phone(e164: str) -> str:
    """`+86138****8000`: enough to recognise, not enough to call."""
    if len(e164) < 8:
        return "*" * len(e164)
    return f"{e164[:-8]}****{e164[-4:]}"


def redact(text: str | None) -> str | None:
    """`text` with secret values replaced by `***` and phone numbers masked (None stays None)."""
    if not text:
        return text
    text = _KV.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{MASK}{m.group(4)}",
                       text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    text = _LONG_TOKEN.sub(MASK, text)
    text = _CN_MOBILE.sub(r"\1****\2", text)
    return _E164.sub(r"\1****\2", text)
