"""collab.logs: the JSON format (one object per line, context fields, tracebacks), redaction in
both formats, and the context a failing hook's line carries."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from collab import logs
from collab.hooks import ConnectionInfo, OnDisconnectPayload, OnUnloadDocumentPayload, _context


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactQueryFilter())
    logger = logging.getLogger("collab.test_logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream, handler
    logger.handlers[:] = []


def test_json_lines_carry_context_and_redact_query_values(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.formatter("json"))
    logger.info(
        "%s joined\nsecond line",
        "/ws/a?token=abc.def",
        extra=logs.context(7, document="a", user=None, client="1.2.3.4:5", path="/x?token=s3"),
    )
    try:
        raise ValueError("GET /api/documents?token=leaked")
    except ValueError:
        logger.exception("failed", extra=logs.context(8, code=1011))
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "/ws/a?token=[redacted] joined\nsecond line"
    assert first["level"] == "info" and first["logger"] == "collab.test_logs"
    assert first["time"].endswith("Z")
    assert (first["conn"], first["document"], first["client"]) == (7, "a", "1.2.3.4:5")
    assert "user" not in first  # None is left out
    assert first["path"] == "/x?token=[redacted]"
    assert (second["conn"], second["code"], second["level"]) == (8, 1011, "error")
    assert "ValueError" in second["exception"] and "leaked" not in second["exception"]
    assert "abc.def" not in stream.getvalue() and "s3" not in stream.getvalue()


def test_text_lines_stay_as_they_were_and_redact_tracebacks(capture) -> None:
    logger, stream, handler = capture
    handler.setFormatter(logs.formatter("text"))
    try:
        raise ValueError("?token=leaked")
    except ValueError:
        logger.exception("at %s", "/ws/a?token=abc", extra=logs.context(3))
    text = stream.getvalue()
    assert " ERROR   collab.test_logs: at /ws/a?token=[redacted]\n" in text
    assert "abc" not in text and "leaked" not in text and "conn" not in text


@pytest.mark.parametrize(
    "created",
    [1700000000.0, 1700000000.0004, 1700000000.9996, 1700000001.5, 1700000000.25, 1767225599.999],
)
def test_the_text_formats_time_is_loggings_own(created) -> None:
    # (the formatter keeps the time of the last second it formatted: same second, next second,
    # and back to an earlier one all come out as logging's default formatter writes them)
    ours = logs.TextFormatter()
    theirs = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for t in (created, created + 0.001, created - 1, created):
        record = logging.makeLogRecord({"msg": "m", "name": "n", "levelname": "INFO"})
        record.created, record.msecs = t, (t - int(t)) * 1000
        assert ours.format(record) == theirs.format(record)


def test_configured_records_skip_what_no_format_shows() -> None:
    saved = logging._srcfile, logging.logThreads, logging.logMultiprocessing
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("info", "json")
        record = logging.getLogger("collab.test_logs").makeRecord(
            "collab.test_logs", logging.INFO, "f", 1, "m", None, None
        )
        assert record.threadName is None and record.processName is None
        assert logging._srcfile is None  # no stack walk for the caller's file and line
        assert record.process  # the json format's pid is still there
    finally:
        logging._srcfile, logging.logThreads, logging.logMultiprocessing = saved
        root.handlers[:], root.level = handlers, level


def test_a_failing_hooks_line_names_its_connection_or_document() -> None:
    info = ConnectionInfo(42, "doc", "1.2.3.4:5", {}, {})
    assert _context("on_disconnect", OnDisconnectPayload("doc", info, 1000, "")) == {
        "conn": 42,
        "hook": "on_disconnect",
        "document": "doc",
        "client": "1.2.3.4:5",
    }
    assert _context("on_unload_document", OnUnloadDocumentPayload("doc")) == {
        "hook": "on_unload_document",
        "document": "doc",
    }
