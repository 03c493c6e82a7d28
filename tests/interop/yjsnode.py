"""Drive real Yjs clients (yjs + y-websocket from npm, in Node) from Python tests.

Each NodeYClient is one `node yclient.mjs <serverUrl> <room>` process holding a Y.Doc and a
WebsocketProvider. Commands go to its stdin as JSON lines; it answers each with one JSON line.
Waiting happens inside Node (the `wait` command re-checks a predicate on every document,
awareness, status and sync event), bounded by a deadline on both sides.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "yclient.mjs"
NODE_MODULES = HERE / "node_modules"
REQUIRED_PACKAGES = ("yjs", "y-websocket", "y-protocols", "ws")
# Generous: a cold `node` start that imports yjs takes ~0.2 s here, but CI machines are slower.
START_TIMEOUT_S = 15.0
MAX_LINE = 64 * 1024 * 1024


def unavailable_reason() -> str | None:
    """Why the interop suite cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "`node` is not on PATH (install Node.js >= 18 to run the interop tests)"
    missing = [p for p in REQUIRED_PACKAGES if not (NODE_MODULES / p / "package.json").is_file()]
    if missing:
        return (
            f"npm packages missing in {NODE_MODULES} ({', '.join(missing)}): "
            "run `make interop-deps` (npm ci in tests/interop)"
        )
    return None


class NodeClientError(RuntimeError):
    pass


class NodeYClient:
    """One real y-websocket client in its own Node process."""

    def __init__(self, process: Process, room: str) -> None:
        self.process = process
        self.room = room
        self.client_id = 0
        self._stdout = BufferedByteReceiveStream(process.stdout)  # type: ignore[arg-type]
        self._lock = anyio.Lock()
        self._next_id = 0

    @classmethod
    async def start(cls, server_url: str, room: str) -> NodeYClient:
        """Spawn `node yclient.mjs <server_url>/ws <room>` and wait for its ready line."""
        node = shutil.which("node")
        assert node is not None
        process = await anyio.open_process(
            [node, str(SCRIPT), f"{server_url}/ws", room],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # inherited: pytest captures it and shows it when a test fails
            cwd=HERE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        client = cls(process, room)
        try:
            with anyio.fail_after(START_TIMEOUT_S):
                ready = await client._read_message()
            if ready.get("event") != "ready":
                raise NodeClientError(f"unexpected first line from node: {ready!r}")
            client.client_id = int(ready["clientID"])
        except BaseException:
            await client.kill()
            raise
        return client

    # -- transport ---------------------------------------------------------------------------

    async def _read_message(self) -> dict[str, Any]:
        try:
            line = await self._stdout.receive_until(b"\n", MAX_LINE)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            code = await self.process.wait()
            raise NodeClientError(f"node client exited with code {code}") from None
        message: dict[str, Any] = json.loads(line)
        if message.get("event") == "fatal":
            raise NodeClientError(f"node client crashed: {message.get('error')}")
        return message

    async def request(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Send one command and return its reply; raise NodeClientError if it failed."""
        assert self.process.stdin is not None
        async with self._lock:
            self._next_id += 1
            request_id = self._next_id
            line = json.dumps({"id": request_id, "cmd": cmd, **(args or {})}) + "\n"
            # Node enforces its own deadline for `wait`; ours is a backstop with some slack.
            with anyio.fail_after(timeout + 5.0):
                await self.process.stdin.send(line.encode())
                reply = await self._read_message()
        if reply.get("id") != request_id:
            raise NodeClientError(f"reply {reply!r} does not answer request {request_id}")
        if not reply.get("ok"):
            raise NodeClientError(f"{cmd} failed: {reply.get('error')}")
        return reply

    # -- commands ----------------------------------------------------------------------------

    async def report(self) -> dict[str, Any]:
        """{clientID, text, map, array, xml, awareness: {id: state}, synced, status}"""
        report: dict[str, Any] = (await self.request("report"))["report"]
        return report

    async def edit(self, *ops: dict[str, Any], interleave: bool = False) -> dict[str, Any]:
        """Apply ops in one transaction, or (interleave=True) one per event-loop turn."""
        reply = await self.request("edit", {"ops": list(ops), "yield": interleave})
        report: dict[str, Any] = reply["report"]
        return report

    async def wait(self, predicate: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the JS function `predicate` (e.g. "r => r.synced") holds for the report."""
        args = {"predicate": predicate, "timeoutMs": int(timeout * 1000)}
        reply = await self.request("wait", args, timeout=timeout)
        report: dict[str, Any] = reply["report"]
        return report

    async def synced(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self.wait("r => r.synced && r.status === 'connected'", timeout)

    async def set_awareness_field(self, field: str, value: Any) -> None:
        await self.request("awareness", {"field": field, "value": value})

    async def set_awareness_field_on_sync(self, field: str, value: Any) -> None:
        """On the next sync event, in the same tick, set an awareness field."""
        await self.request("awarenessOnSync", {"field": field, "value": value})

    async def set_awareness(self, state: dict[str, Any] | None) -> None:
        await self.request("awareness", {"state": state})

    async def cursor_of(self, client_id: int) -> dict[str, int | None]:
        """That client's awareness cursor resolved by Yjs on 'text', as y-codemirror.next
        does: {anchor, head} as JS string indexes (None when absent)."""
        reply = await self.request("cursor", {"clientID": client_id})
        return {"anchor": reply["anchor"], "head": reply["head"]}

    # -- subdocuments (a root map 'subdocs' of Y.Docs: see yclient.mjs) ----------------------

    async def set_subdoc(self, key: str, **opts: Any) -> None:
        """subdocs.set(key, new Y.Doc(opts)): guid, meta, autoLoad, shouldLoad, gc."""
        await self.request("subdoc_set", {"key": key, "opts": opts})

    async def delete_subdoc(self, key: str) -> None:
        await self.request("subdoc_delete", {"key": key})

    async def subdocs(self, *keys: str, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
        """Once every key is there: {key: {guid, meta, autoLoad, shouldLoad, gc}}."""
        args = {"keys": list(keys), "timeoutMs": int(timeout * 1000)}
        described: dict[str, dict[str, Any]] = (
            await self.request("subdocs", args, timeout=timeout)
        )["subdocs"]
        return described

    async def destroy(self) -> None:
        """provider.destroy(): the awareness-null frame, then a clean close."""
        await self.request("destroy")

    async def kill(self) -> None:
        """SIGKILL: the socket dies with the process, no awareness-null frame, no close frame."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        with anyio.move_on_after(5, shield=True):
            await self.process.wait()
        await self.process.aclose()


# -- the Python side's view, shaped like a Node report -------------------------------------------


def xml_tree(node: Any) -> dict[str, Any]:
    """Mirror of yclient.mjs's xmlTree: {tag, attrs, children} or {text}."""
    if isinstance(node, XmlElement):
        return {
            "tag": node.tag,
            "attrs": dict(node.attributes),
            "children": [xml_tree(c) for c in node.children],
        }
    if isinstance(node, XmlText):
        return {"text": str(node)}
    return {"other": str(node)}


def snapshot(doc: Doc[Any]) -> dict[str, Any]:
    """The same fields a Node report has, read from a pycrdt Doc."""
    return {
        "text": str(doc.get("text", type=Text)),
        "map": doc.get("map", type=Map).to_py(),
        "array": doc.get("array", type=Array).to_py(),
        "xml": [xml_tree(c) for c in doc.get("xml", type=XmlFragment).children],
    }


def content(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report[key] for key in ("text", "map", "array", "xml")}
