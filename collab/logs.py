"""Logging set-up for the CLI (the only place handlers are configured), and the context a log
line about one connection carries.

Two formats (COLLAB_LOG_FORMAT): `text`, one human line per record as always, and `json`, one
JSON object per line: `time` (ISO 8601, UTC), `level`, `logger`, `message`, `pid`, then the
record's context fields (what the call site passed as `extra=`: `conn`, `document`, `user`,
`client`, `code`, `reason`, `duration_ms`, ...), and `exception` for a traceback. Every line
about a connection carries its id as `conn` (`context()`; `Session.log_context()` and the
sockets' `log_context()` fill it in), the same number the text format shows as `#id`.

Query values (tokens travel as `?token=`) are redacted in both formats, in the message and in
the context fields alike (`RedactQueryFilter`, on the handler).
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

# Every query-string value, whatever its (possibly percent-encoded) name: Starlette decodes
# `?%74oken=` to `token`, so matching names would let an encoded one through to the log.
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"'?]*=)[^&\s\"']*")

# What every LogRecord has: anything else on a record came from `extra=` (its context).
# (uvicorn adds color_message: its message with terminal colours, nothing a JSON reader wants)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def context(conn: int, **fields: Any) -> dict[str, Any]:
    """The `extra=` of a log line about connection `conn` (fields that are None are left out)."""
    extra: dict[str, Any] = {"conn": conn}
    for key, value in fields.items():
        if value is not None:
            extra[key] = value
    return extra


def _redact(text: str) -> str:
    return _QUERY_VALUE.sub(r"\1[redacted]", text)


class RedactQueryFilter(logging.Filter):
    """Tokens travel in the query string (?token=): no query value ever reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "=" in message:  # (no query value without one: most lines skip the expression)
            redacted = _redact(message)
            if redacted != message:
                record.msg = redacted
                record.args = None
        fields = record.__dict__
        for key in fields.keys() - _STANDARD:
            value = fields[key]
            if isinstance(value, str) and "=" in value:
                fields[key] = _redact(value)
        return True


class TextFormatter(logging.Formatter):
    """The text format; a traceback's query values are redacted too (the filter sees only the
    message)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """logging's own format, with the date and time of the second made once a second (a
        connection storm logs thousands of lines a second: strftime was a tenth of each)."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return f"{self._second[1]},{int(record.msecs):03d}"

    def formatException(self, ei: Any) -> str:
        return _redact(super().formatException(ei))


class JsonFormatter(TextFormatter):
    """One JSON object per record, on one line (a newline in a message is escaped). Redacts
    by itself as well, field by field (redacting the JSON text could split an escape)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _redact(record.getMessage()),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = _redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = _redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure(level: str, fmt: str = "text") -> None:
    """The root logger writes to stderr in `fmt` ("text" or "json"); uvicorn's loggers
    (access lines included) go through it, so they share the format and the redaction."""
    # Neither format shows the caller's file, line and function, nor thread names: finding
    # them was a third of what a record cost (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RedactQueryFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
