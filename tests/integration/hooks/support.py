"""What every hook test needs: an extension that records each call, and small helpers.

`Recorder` overrides every hook, appends `(hook, payload)` to `calls` (and `(name, hook)` to a
log it may share with other recorders, to see their order) and wakes `wait_for`, so tests wait
on what the server did instead of sleeping.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import websockets
from pycrdt import Doc, Text

from collab.access import Access
from collab.connection import BaseConnection
from collab.hooks import (
    ConnectionInfo,
    Extension,
    OnAuthenticatePayload,
    OnChangePayload,
    OnConnectPayload,
    OnDisconnectPayload,
    OnLoadDocumentPayload,
    OnRequestPayload,
    OnShutdownPayload,
    OnStartupPayload,
    OnStatelessPayload,
    OnStoreDocumentPayload,
    OnUnloadDocumentPayload,
)
from collab.session import Session
from storage import DocumentStore
from tests.ywire import YClient


class Recorder(Extension):
    def __init__(
        self, name: str = "rec", priority: int = 100, log: list[tuple[str, str]] | None = None
    ) -> None:
        self.name = name
        self.priority = priority
        self.calls: list[tuple[str, Any]] = []
        self.log = log if log is not None else []
        self._changed = anyio.Event()

    def record(self, hook: str, payload: Any) -> None:
        self.calls.append((hook, payload))
        self.log.append((self.name, hook))
        self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def payloads(self, hook: str) -> list[Any]:
        return [payload for name, payload in self.calls if name == hook]

    def count(self, hook: str) -> int:
        return len(self.payloads(hook))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    async def on_startup(self, payload: OnStartupPayload) -> None:
        self.record("on_startup", payload)

    async def on_connect(self, payload: OnConnectPayload) -> None:
        self.record("on_connect", payload)

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        self.record("on_authenticate", payload)
        return None

    async def on_load_document(self, payload: OnLoadDocumentPayload) -> None:
        self.record("on_load_document", payload)

    async def on_request(self, payload: OnRequestPayload) -> Access | None:
        self.record("on_request", payload)
        return None

    async def on_change(self, payload: OnChangePayload) -> None:
        self.record("on_change", payload)

    async def on_store_document(self, payload: OnStoreDocumentPayload) -> None:
        self.record("on_store_document", payload)

    async def on_disconnect(self, payload: OnDisconnectPayload) -> None:
        self.record("on_disconnect", payload)

    async def on_unload_document(self, payload: OnUnloadDocumentPayload) -> None:
        self.record("on_unload_document", payload)

    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        self.record("on_shutdown", payload)

    async def on_stateless(self, payload: OnStatelessPayload) -> None:
        self.record("on_stateless", payload)


class HeaderClient(YClient):
    """A YClient that sends extra HTTP headers with its upgrade request."""

    def __init__(self, *args: Any, headers: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers = dict(headers)

    async def open_socket(self) -> None:
        self.ws = await websockets.connect(
            self.url,
            max_size=None,
            compression=None,
            ping_interval=None,
            additional_headers=self.headers,
        )


class RefusedClient(YClient):
    """A YClient for a connection the server is expected to close right after accepting it:
    the close frame may already be in when the client sends its sync step 1, which is fine."""

    async def send(self, message: bytes | str) -> None:
        try:
            await super().send(message)
        except websockets.ConnectionClosed:
            pass


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.01)


async def closed(client: YClient) -> tuple[int | None, str]:
    """Wait for the server to close `client`; its close code and reason."""
    await client.wait_for(lambda: client.close_code is not None)
    return client.close_code, client.close_reason


def text(client_or_doc: YClient | Doc[Any]) -> str:
    doc = client_or_doc.doc if isinstance(client_or_doc, YClient) else client_or_doc
    return str(doc.get("t", type=Text))


def update_inserting(value: str, doc: Doc[Any] | None = None) -> bytes:
    """A v1 update inserting `value` at the end of Text "t" (of `doc`, or of a new Doc)."""
    doc = doc if doc is not None else Doc()
    before = doc.get_state()
    t = doc.get("t", type=Text)
    t.insert(len(t), value)
    update: bytes = doc.get_update(before)
    return update


def doc_from(updates: list[bytes]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


async def stored_text(store: DocumentStore, name: str) -> str:
    stored = await store.load(name)
    return text(doc_from(([stored.snapshot] if stored.snapshot else []) + list(stored.updates)))


def local_client(client: YClient) -> str:
    """The "host:port" the server sees for this client."""
    assert client.ws is not None
    host, port = client.ws.local_address[:2]
    return f"{host}:{port}"


def connection_of(info: ConnectionInfo) -> BaseConnection:
    """The server's socket behind a hook's ConnectionInfo (same process, same objects)."""
    for referrer in gc.get_referrers(info):
        if isinstance(referrer, Session) and isinstance(referrer.socket, BaseConnection):
            return referrer.socket
    raise LookupError(f"no session holds {info!r}")
