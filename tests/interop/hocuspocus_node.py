"""Drive real `@hocuspocus/provider` clients (in Node) from Python tests.

One `NodeHocuspocus` is one `node hocuspocus_client.mjs <url>` process: one
HocuspocusProviderWebsocket with a HocuspocusProvider per document opened on it. Commands and
replies are JSON lines, as for yjsnode.NodeYClient (whose transport it reuses); waiting happens
inside Node, on events, bounded by a deadline on both sides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import anyio

from .yjsnode import HERE, NODE_MODULES, START_TIMEOUT_S, NodeClientError, NodeYClient

SCRIPT = HERE / "hocuspocus_client.mjs"


def provider_missing() -> str | None:
    if not (NODE_MODULES / "@hocuspocus" / "provider" / "package.json").is_file():
        return f"@hocuspocus/provider missing in {NODE_MODULES}: run `make interop-deps`"
    return None


class NodeHocuspocus(NodeYClient):
    """One socket of real Hocuspocus providers, in its own Node process."""

    @classmethod
    async def start(cls, server_url: str, room: str = "") -> NodeHocuspocus:
        """Spawn `node hocuspocus_client.mjs <server_url>/hocuspocus` (`room` unused)."""
        node = shutil.which("node")
        assert node is not None
        process = await anyio.open_process(
            [node, str(SCRIPT), f"{server_url}/hocuspocus"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            cwd=HERE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        client = cls(process, room)
        try:
            with anyio.fail_after(START_TIMEOUT_S):
                ready = await client._read_message()
            if ready.get("event") != "ready":
                raise NodeClientError(f"unexpected first line from node: {ready!r}")
        except BaseException:
            await client.kill()
            raise
        return client

    async def open(
        self,
        name: str,
        token: str | None = None,
        user: dict[str, Any] | None = None,
        session_awareness: bool = False,
    ) -> None:
        args = {"name": name, "token": token, "user": user, "sessionAwareness": session_awareness}
        await self.request("open", args)

    async def insert(self, name: str, value: str, index: int | None = None) -> None:
        await self.request("insert", {"name": name, "value": value, "index": index})

    async def stateless(self, name: str, payload: str) -> None:
        await self.request("stateless", {"name": name, "payload": payload})

    async def awareness(self, name: str, field: str, value: Any) -> None:
        await self.request("awareness", {"name": name, "field": field, "value": value})

    async def force_sync(self, name: str) -> None:
        await self.request("forceSync", {"name": name})

    async def close_document(self, name: str) -> None:
        await self.request("close", {"name": name})

    async def disconnect(self) -> None:
        await self.request("disconnect")

    async def connect(self) -> None:
        await self.request("connect")

    async def doc(self, name: str, predicate: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until `predicate` (JS source over that document's report, `d => ...`) holds;
        the document's report."""
        key = json.dumps(name)
        report = await self.wait(f"r => r.docs[{key}] && ({predicate})(r.docs[{key}])", timeout)
        doc: dict[str, Any] = report["docs"][name]
        return doc
