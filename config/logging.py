"""Structured logging: `text` for people, `json` (one object a line) for log shippers."""
from __future__ import annotations

import json
import logging
import sys

from config.settings import get_settings


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and exception text when present."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (CLI runners and test harnesses swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging() -> None:
    """Configure the root logger from SIYU_LOG_FORMAT and SIYU_LOG_LEVEL."""
    settings = get_settings()
    handler = _StderrHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    import jieba  # it sets its own logger to DEBUG on import; quiet it once, here

    jieba.setLogLevel(logging.WARNING)
