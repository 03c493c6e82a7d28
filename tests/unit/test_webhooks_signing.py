"""The webhook signature (collab.extensions.webhooks): sign and verify, what verify refuses, and
the extension's configuration checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from collab.extensions.webhooks import Webhooks, from_settings, shown_url, sign, verify
from collab.settings import Settings
from tests.conftest import require

SECRET = "whsec-test"
BODY = b'{"id":"evt_1","type":"document.changed"}'


def headers(timestamp: str, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {"Collab-Timestamp": timestamp, "Collab-Signature": sign(secret, timestamp, body)}


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    expected = hmac.new(b"k", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", BODY) == f"v1={expected}"


def test_verify_accepts_a_fresh_signed_request_with_headers_in_any_case() -> None:
    assert verify(SECRET, headers("1700000000"), BODY, now=1700000000)
    lower = {k.lower(): v for k, v in headers("1700000000").items()}
    assert verify(SECRET, lower, BODY, now=1700000299)


@pytest.mark.parametrize(
    ("request_headers", "body", "now"),
    [
        (headers("1700000000"), BODY + b" ", 1700000000),  # body changed
        (headers("1700000000", secret="other"), BODY, 1700000000),  # another secret
        (headers("1700000000"), BODY, 1700000301),  # stale: replayed 5 min later
        (headers("1700000000"), BODY, 1699999699),  # from the future
        ({"Collab-Timestamp": "1700000000"}, BODY, 1700000000),  # unsigned
        ({"Collab-Signature": sign(SECRET, "1700000000", BODY)}, BODY, 1700000000),
        ({**headers("1700000000"), "Collab-Timestamp": "1700000001"}, BODY, 1700000000),
        ({**headers("1700000000"), "Collab-Timestamp": "17e8"}, BODY, 1700000000),
    ],
)
def test_verify_refuses(request_headers: dict[str, str], body: bytes, now: float) -> None:
    assert not verify(SECRET, request_headers, body, now=now)


def test_verify_accepts_any_of_several_signatures() -> None:
    """(So a sender may sign with an old and a new secret while a secret is rotated.)"""
    good = sign(SECRET, "1700000000", BODY)
    both = {"Collab-Timestamp": "1700000000", "Collab-Signature": f"v1=00ff, {good}"}
    assert verify(SECRET, both, BODY, now=1700000000)


def test_from_settings() -> None:
    assert from_settings(Settings()) == []
    settings = Settings(webhook_urls="http://a.test/x, https://b.test/y", webhook_secret="s")
    (hooks,) = from_settings(settings)
    assert isinstance(hooks, Webhooks)
    assert hooks.urls == ["http://a.test/x", "https://b.test/y"]
    with pytest.raises(ValueError, match="secret"):
        from_settings(Settings(webhook_urls="http://a.test/x"))
    with pytest.raises(ValueError, match="http"):
        from_settings(Settings(webhook_urls="ftp://a.test/x", webhook_secret="s"))
    with pytest.raises(ValueError, match="twice"):
        from_settings(Settings(webhook_urls="http://a.test,http://a.test", webhook_secret="s"))


def test_a_password_in_a_url_is_never_shown() -> None:
    assert shown_url("https://u:pw@h.test:8443/p?q=1") == "https://u:***@h.test:8443/p?q=1"
    assert shown_url("https://h.test/p") == "https://h.test/p"


# -- the docs' verification examples, run as printed ---------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def example(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), re.S)
    return next(block for block in blocks if "verified" in block)


def cases() -> list[tuple[dict[str, str], bytes, bool]]:
    now = str(int(time.time()))
    stale = str(int(time.time()) - 301)
    return [
        (headers(now), BODY, True),
        (headers(now), BODY + b" ", False),
        (headers(now, secret="other"), BODY, False),
        (headers(stale), BODY, False),
        ({"Collab-Timestamp": now}, BODY, False),
    ]


def test_the_python_example_verifies_as_verify_does() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(example("python"), "docs/events.md", "exec"), namespace)
    for request_headers, body, expected in cases():
        assert namespace["verified"](SECRET, request_headers, body) is expected
        assert verify(SECRET, request_headers, body) is expected


def test_the_javascript_example_verifies_as_verify_does(tmp_path: Path) -> None:
    require(shutil.which("node") is not None, "node is not installed")
    script = tmp_path / "verify.js"
    runs = [
        {"headers": {k.lower(): v for k, v in h.items()}, "body": b.decode(), "expected": e}
        for h, b, e in cases()
    ]
    script.write_text(
        example("js")
        + f"\nconst runs = {json.dumps(runs)};\n"
        + "console.log(JSON.stringify(runs.map(r => verified("
        + f"{json.dumps(SECRET)}, r.headers, Buffer.from(r.body)))));\n"
    )
    done = subprocess.run(["node", str(script)], capture_output=True, timeout=30, check=True)
    assert json.loads(done.stdout) == [run["expected"] for run in runs]


def test_collab_serve_refuses_webhooks_without_a_secret_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "collab",
            "serve",
            "--port",
            "0",
            "--database-url",
            f"sqlite+aiosqlite:///{tmp_path}/c.db",
            "--webhook-urls",
            "https://app.test/hook",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "collab: webhooks need a secret (COLLAB_WEBHOOK_SECRET) to sign with\n"
    )
