"""Logging set-up for the CLI (the only place handlers are configured)."""

from __future__ import annotations

import logging
import re

# Every query-string value, whatever its (possibly percent-encoded) name: Starlette decodes
# `?%74oken=` to `token`, so matching names would let an encoded one through to the log.
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"'?]*=)[^&\s\"']*")


class RedactQueryFilter(logging.Filter):
    """Tokens travel in the query string (?token=): no query value ever reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _QUERY_VALUE.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactQueryFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
