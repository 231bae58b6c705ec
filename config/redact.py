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


_SUFFIXED = re.compile("_(?:" + "|".join(re.escape(w) for w in SECRET_SUFFIXES) + ")$")


def _is_secret(key: str) -> bool:
    key = key.lower()
    return key in SECRET_KEYS or bool(_SUFFIXED.search(key))


# Every `name=value` and `"name": "value"` is found by a cheap pattern and kept unless its name is secret;
# an alternation of the secret names inside the pattern costs ten times as much on a long traceback.
# key=value (URLs, form bodies, dataclass reprs): the value runs to the next separator, or is quoted.
_KV = re.compile(r"(?<!\w)([A-Za-z]\w*)=('[^']*'|\"[^\"]*\"|[^&\s'\"<>#,;)\]}]+)")
# "key": "value" (JSON) and 'key': 'value' (Python reprs of dicts).
_QUOTED = re.compile(r"([\"'])([A-Za-z]\w*)\1(\s*:\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
# A credential has a digit or a symbol somewhere: "Basic configuration" stays as it is.
_BEARER = re.compile(r"\b(Bearer|bearer|BEARER|Basic)\s+(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s/]+@")
# Access tokens, session keys, API keys: 40+ URL-safe characters mixing upper case, lower case and digits.
# Hex digests, ids and words are not mixed-case, so they stay readable.
_RUN = re.compile(r"[A-Za-z0-9_-]{40,}")
_MIXED = (re.compile(r"\d"), re.compile(r"[a-z]"), re.compile(r"[A-Z]"))
# Mainland mobiles with or without +86, and any other E.164 number: a run of 7+ digits, then a closer look.
_DIGITS = re.compile(r"\+?\d[\d -]{6,}\d")
_CN_MOBILE = re.compile(r"(?<![\w+])((?:\+?86[- ]?)?1[3-9]\d)\d{4}(\d{4})(?!\w)")
_E164 = re.compile(r"(?<![\w+])(\+[1-9]\d{2,6})\d{4}(\d{4})(?!\w)")


def _kv(m: re.Match) -> str:
    return f"{m.group(1)}={MASK}" if _is_secret(m.group(1)) else m.group(0)


def _quoted(m: re.Match) -> str:
    if not _is_secret(m.group(2)):
        return m.group(0)
    q = m.group(4)[0]
    return f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{q}{MASK}{q}"


def _token(m: re.Match) -> str:
    run = m.group(0)
    return MASK if all(p.search(run) for p in _MIXED) else run


def mask_phone(e164: str) -> str:
    """`+86138****8000`: enough to recognise, not enough to call."""
    if len(e164) < 8:
        return "*" * len(e164)
    return f"{e164[:-8]}****{e164[-4:]}"


def redact(text: str | None) -> str | None:
    """`text` with secret values replaced by `***` and phone numbers masked (None stays None)."""
    if not text:
        return text
    if "=" in text:
        text = _KV.sub(_kv, text)
    if ":" in text:
        text = _QUOTED.sub(_quoted, text)
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _RUN.sub(_token, text)
    if _DIGITS.search(text):
        text = _CN_MOBILE.sub(r"\1****\2", text)
        text = _E164.sub(r"\1****\2", text)
    return text
