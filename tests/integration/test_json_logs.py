"""COLLAB_LOG_FORMAT=json on a real `collab serve`: a scripted session (an editor that writes
and leaves, a bad token, a text frame, API calls with a token in the query, SIGTERM), then every
line the process wrote parses as one JSON object with time, level, logger and message; every
line that names a connection's address carries that connection's id, the same id throughout;
and no token appears anywhere."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest
import websockets
from pycrdt import Text

from collab.extensions.token_auth import mint_token
from tests.procs import ServerProcess
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "json-logs-test-secret-0123456789abcdef"


def local_port(client: Any) -> int:
    port: int = client.local_address[1]
    return port


async def test_json_log_lines_parse_carry_the_connection_id_and_no_token(launch: Any) -> None:
    server: ServerProcess = launch("--log-format", "json", "--auth-secret", SECRET)
    await server.start()
    writer_token = mint_token(doc="logs/*", write=True, ttl_s=600, user="alice", secret=SECRET)
    bad_token = "not-a-token-" + os.urandom(8).hex()
    ports: dict[str, int] = {}

    # An editor that joins, writes and leaves.
    async with YClient(server.url, "logs/a", query=f"token={writer_token}") as editor:
        await editor.wait_for(lambda: editor.synced)
        assert editor.ws is not None
        ports["editor"] = local_port(editor.ws)
        editor.doc.get("text", type=Text).insert(0, "hello")
        await editor.sent()
        await editor.close()

    # A bad token (4401), and a text frame, which the protocol does not allow (1003).
    for what, url, code in [
        ("refused", f"{server.url}/ws/logs/a?token={bad_token}", 4401),
        ("text", f"{server.url}/ws/logs/b?token={writer_token}", 1003),
    ]:
        async with websockets.connect(url) as raw:
            ports[what] = local_port(raw)
            if what == "text":
                await raw.send("hello")
            with anyio.fail_after(5), pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await raw.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code

    async with httpx.AsyncClient(trust_env=False) as http:
        base = f"http://127.0.0.1:{server.port}"
        listed = await http.get(f"{base}/api/documents?token={writer_token}")
        assert listed.status_code == 200
        assert (await http.get(f"{base}/api/documents?token={bad_token}")).status_code == 401
    await server.stop()

    text = server.log_path.read_text().rpartition("=== start:")[2]
    lines = [line for line in text.splitlines()[1:] if not line.startswith("=== exited")]
    assert len(lines) > 10, text
    entries: list[dict[str, Any]] = []
    for line in lines:
        entry = json.loads(line)  # every line: one JSON object
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= set(entry), line
        assert datetime.fromisoformat(entry["time"]).utcoffset().total_seconds() == 0, line
        entries.append(entry)

    for what, port in ports.items():
        about = [e for e in entries if f":{port}" in e["message"]]
        # at least the 101, the admission's verdict or the error, and the close
        assert len(about) >= 3, (what, about)
        ids = {e.get("conn") for e in about}
        assert len(ids) == 1 and None not in ids, (what, about)
        closed_line = [e for e in about if e["logger"] == "collab.connection"]
        assert (
            closed_line
            and closed_line[-1]["code"]
            == {
                "editor": 1000,
                "refused": 4401,
                "text": 1003,
            }[what]
        ), (what, about)
    joined = [e for e in entries if "joined" in e["message"]]
    assert ("alice", "logs/a") in [(e.get("user"), e["document"]) for e in joined], joined
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert any("/api/documents?token=[redacted]" in e["message"] for e in access), access

    written = "\n".join(lines)  # (the harness's own "=== start:" line shows the command)
    for secret in (writer_token, writer_token.split(".")[2], bad_token, SECRET):
        assert secret not in written
