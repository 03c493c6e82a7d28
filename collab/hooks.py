"""Extension points. Subclass `Extension`, override the hooks you need, pass instances to
`create_app(settings, extensions=[...])`. Hooks run in `priority` order (higher first), one after
another.

| hook               | when                               | may                                |
|--------------------|------------------------------------|------------------------------------|
| on_connect         | after accept, before auth          | raise Reject(code, reason)         |
| on_authenticate    | with the ?token= query parameter   | return a context dict; set         |
|                    |                                    | payload.connection.read_only;      |
|                    |                                    | raise Reject (4401/4403)           |
| on_load_document   | first join of a document           | fill payload.doc; raising closes   |
|                    |                                    | the joiners with 1011              |
| on_change          | after an update was applied        | cheap work or enqueue (runs after  |
|                    |                                    | the fan-out, never in front of it) |
| on_store_document  | after updates were committed       | react to durable changes           |
| on_disconnect      | a connection closed                | audit                              |
| on_unload_document | after the final flush and unload   | release resources                  |
| on_request         | an HTTP API request (/api/...),    | return an `Access` (the documents  |
|                    | before it is answered              | it may see); None: no opinion;     |
|                    |                                    | raise Reject (4401 -> HTTP 401,    |
|                    |                                    | 4403 -> 403)                       |

Errors in on_change, on_store_document, on_disconnect and on_unload_document are logged and never
reach a client.

The HTTP API asks `on_request` hooks in priority order; the first that returns an `Access` decides.
When none does: a server with no authentication at all (no on_authenticate or on_request hook,
no token auth) answers everyone, as its WebSocket route does; any other answers 401. So a server
whose connections need a token never shows its documents over HTTP to anyone without one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from pycrdt import Doc

from .access import Access
from .errors import CloseCode, CollabError, Reject

log = logging.getLogger(__name__)

__all__ = [
    "ConnectionInfo",
    "Extension",
    "HookRunner",
    "OnAuthenticatePayload",
    "OnChangePayload",
    "OnConnectPayload",
    "OnDisconnectPayload",
    "OnLoadDocumentPayload",
    "OnRequestPayload",
    "OnStoreDocumentPayload",
    "OnUnloadDocumentPayload",
    "Reject",
]


@dataclass(slots=True)
class ConnectionInfo:
    """What hooks know of one connection. `context` and `read_only` are theirs to set."""

    id: int
    document: str
    client: str  # "host:port"
    headers: Mapping[str, str]
    query: Mapping[str, str]
    context: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class OnConnectPayload:
    document: str
    connection: ConnectionInfo


@dataclass(frozen=True, slots=True)
class OnAuthenticatePayload:
    document: str
    token: str | None
    connection: ConnectionInfo


@dataclass(frozen=True, slots=True)
class OnLoadDocumentPayload:
    document: str
    doc: Doc[Any]  # already restored from the store; fill it if it is new
    is_new: bool  # nothing was stored for this document


@dataclass(frozen=True, slots=True)
class OnChangePayload:
    document: str
    update: bytes
    connection: ConnectionInfo | None


@dataclass(frozen=True, slots=True)
class OnStoreDocumentPayload:
    document: str
    updates: int  # how many updates were just committed


@dataclass(frozen=True, slots=True)
class OnDisconnectPayload:
    document: str
    connection: ConnectionInfo
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class OnUnloadDocumentPayload:
    document: str


@dataclass(frozen=True, slots=True)
class OnRequestPayload:
    """An HTTP API request. `token` is the bearer token (`Authorization: Bearer ...`) or the
    `?token=` query parameter (for EventSource and links), without the other."""

    method: str
    path: str
    token: str | None
    headers: Mapping[str, str]
    query: Mapping[str, str]
    client: str  # "host:port"


class Extension:
    """Base class: every hook does nothing. Override only what you need."""

    priority: int = 100

    async def on_connect(self, payload: OnConnectPayload) -> None:
        pass

    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        return None

    async def on_load_document(self, payload: OnLoadDocumentPayload) -> None:
        pass

    async def on_change(self, payload: OnChangePayload) -> None:
        pass

    async def on_store_document(self, payload: OnStoreDocumentPayload) -> None:
        pass

    async def on_disconnect(self, payload: OnDisconnectPayload) -> None:
        pass

    async def on_unload_document(self, payload: OnUnloadDocumentPayload) -> None:
        pass

    async def on_request(self, payload: OnRequestPayload) -> Access | None:
        return None


HOOKS = (
    "on_connect",
    "on_authenticate",
    "on_load_document",
    "on_change",
    "on_store_document",
    "on_disconnect",
    "on_unload_document",
    "on_request",
)
BACKGROUND_QUEUE = 10_000  # pending on_change/on_store/on_unload calls before they are dropped


class HookRunner:
    """Runs each hook over the extensions that override it, highest priority first."""

    def __init__(self, extensions: Any = ()) -> None:
        ordered = sorted(extensions, key=lambda e: -e.priority)  # stable: equal keep order
        self._by_hook: dict[str, list[Any]] = {
            name: [
                getattr(ext, name)
                for ext in ordered
                if getattr(type(ext), name) is not getattr(Extension, name)
            ]
            for name in HOOKS
        }
        send, receive = anyio.create_memory_object_stream[tuple[str, Any]](BACKGROUND_QUEUE)
        self._send, self._receive = send, receive
        self._drained = anyio.Event()
        self._running = False
        self.dropped = 0

    def has(self, hook: str) -> bool:
        return bool(self._by_hook[hook])

    async def connect(self, payload: OnConnectPayload) -> None:
        for hook in self._by_hook["on_connect"]:
            await hook(payload)

    async def authenticate(self, payload: OnAuthenticatePayload) -> None:
        for hook in self._by_hook["on_authenticate"]:
            context = await hook(payload)
            if context:
                payload.connection.context.update(context)

    async def request(self, payload: OnRequestPayload) -> Access | None:
        """The first `Access` an on_request hook grants, or None; a Reject propagates."""
        for hook in self._by_hook["on_request"]:
            access: Access | None = await hook(payload)
            if access is not None:
                return access
        return None

    async def load_document(self, payload: OnLoadDocumentPayload) -> None:
        for hook in self._by_hook["on_load_document"]:
            await hook(payload)

    async def disconnect(self, payload: OnDisconnectPayload) -> None:
        await self._run_logged("on_disconnect", payload)

    def enqueue(self, hook: str, payload: Any) -> None:
        """Schedule a background hook (on_change, on_store_document, on_unload_document) without
        awaiting: they run one after another in `run_background`, never in front of a fan-out."""
        if not self._by_hook[hook]:
            return
        try:
            self._send.send_nowait((hook, payload))
        except anyio.ClosedResourceError:
            log.warning("%s after shutdown: not run", hook)
        except anyio.WouldBlock:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("%s hooks are too slow: %d calls dropped", hook, self.dropped)

    async def run_background(self) -> None:
        self._running = True
        try:
            async with self._receive:
                async for hook, payload in self._receive:
                    await self._run_logged(hook, payload)
        finally:
            self._send.close()
            self._drained.set()

    async def drain(self, wait_s: float) -> None:
        """Stop taking background calls and wait (bounded) for the queued ones to run."""
        self._send.close()
        if not self._running:
            self._receive.close()
            return
        with anyio.move_on_after(wait_s):
            await self._drained.wait()

    async def _run_logged(self, hook: str, payload: Any) -> None:
        for method in self._by_hook[hook]:
            try:
                await method(payload)
            except Exception:
                log.exception("%s hook %s failed", hook, getattr(method, "__qualname__", method))


def reject_from(exc: BaseException) -> CollabError:
    """What a hook raised, as the error that closes the connection."""
    if isinstance(exc, CollabError):
        return exc
    log.error("hook failed", exc_info=exc)
    return CollabError("internal error", CloseCode.INTERNAL_ERROR)
