"""Logging set-up for the CLI (the only place handlers are configured)."""

from __future__ import annotations

import logging
import re

_SECRET_QUERY = re.compile(r"([?&](?:token|access_token|auth|key)=)[^&\s\"]*", re.IGNORECASE)


class RedactQueryFilter(logging.Filter):
    """Tokens travel in the query string (?token=): never let one reach a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_QUERY.sub(r"\1[redacted]", message)
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
