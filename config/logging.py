"""Structured logging: `text` for people, `json` (one object a line) for log shippers; every line redacted.

No secret and no full phone number reaches a log line: every record, its traceback included, passes
`config.redact`. uvicorn's access log gets more: a webhook's query string is its signature, and Tencent's
plain-mode signature covers only (Token, timestamp, nonce), so one logged request would let anyone post
any body for ever; it is dropped. Elsewhere phones and customer identities in query strings are masked.
"""
from __future__ import annotations

import json
import logging
import sys
from urllib.parse import parse_qsl, urlencode

from config.redact import MASK, mask_phone, redact
from config.settings import get_settings

PHONE_KEYS = frozenset({"phone", "mobile"})
IDENTITY_KEYS = frozenset({"external_userid", "openid", "unionid"})  # customers'; staff userids stay readable
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")


def _mask_identity(value: str) -> str:
    if MASK in value:  # masked already (a record can pass two filters)
        return value
    return f"{value[:4]}{MASK}" if len(value) > 8 else MASK


def access_path(path: str) -> str:
    """The path of an access-log line as it may be written: no webhook query, no phone, no identity, no secret."""
    route, sep, query = path.partition("?")
    if not sep:
        return redact(route)
    if route == "/webhooks" or route.startswith("/webhooks/"):
        return route
    pairs = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() in PHONE_KEYS and value:
            value = mask_phone(value)
        elif key.lower() in IDENTITY_KEYS and value:
            value = _mask_identity(value)
        pairs.append((key, value))
    return redact(f"{route}?{urlencode(pairs, safe='*+')}")


class RedactingFilter(logging.Filter):
    """Redacts a record's message and traceback in place; on uvicorn's access records, the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.access: '%s - "%s %s HTTP/%s" %d' % (client, method, path, version, status); its formatter
        # unpacks the five arguments, so the path is rewritten where it stands.
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            record.args = (*args[:2], access_path(str(args[2])), *args[3:])
            return True
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


REDACTING_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Redact uvicorn's records (they bypass the root handler) and whatever the root handlers write; idempotent."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if REDACTING_FILTER not in logger.filters:
            logger.addFilter(REDACTING_FILTER)
    for handler in logging.getLogger().handlers:
        if REDACTING_FILTER not in handler.filters:
            handler.addFilter(REDACTING_FILTER)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and exception text when present."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info or record.exc_text:
            doc["exc"] = record.exc_text or self.formatException(record.exc_info)  # exc_text: redacted
        return json.dumps(doc, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (CLI runners and test harnesses swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _formatter() -> logging.Formatter:
    return JsonFormatter() if get_settings().log_format == "json" else logging.Formatter(TEXT_FORMAT)


def uvicorn_log_config() -> dict:
    """uvicorn's `log_config`: its records (the access log too) go to the root handler, on stderr, in Siyu's format.

    uvicorn applies it in every worker process it starts, where `setup_logging` never ran; its own default
    would print the access log on stdout, which is for results.
    """
    level = get_settings().log_level
    formatter = {"()": JsonFormatter} if get_settings().log_format == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"siyu": formatter},
        "filters": {"redact": {"()": RedactingFilter}},
        "handlers": {"stderr": {"()": _StderrHandler, "formatter": "siyu", "filters": ["redact"]}},
        "loggers": {name: {"level": level, "handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
        "root": {"level": level, "handlers": ["stderr"]},
    }


def setup_logging() -> None:
    """Configure the root logger from SIYU_LOG_FORMAT and SIYU_LOG_LEVEL."""
    settings = get_settings()
    handler = _StderrHandler()
    handler.setFormatter(_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    install_log_redaction()
    import jieba  # it sets its own logger to DEBUG on import; quiet it once, here

    jieba.setLogLevel(logging.WARNING)
