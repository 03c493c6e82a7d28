"""Extension points. Subclass `Extension`, override the hooks you need, pass instances to
`create_app(settings, extensions=[...])`. Hooks run in `priority` order (higher first), one after
another; an extension that does not override a hook is never called for it.

Each hook is a method of `Extension`, whose docstring says when it runs and what it may do, and
a name in `HookName`. A hook is one of three kinds (`Kind`):
- inline: awaited where it happens, in priority order; an exception stops the hooks after it
  and is the answer (a Reject closes the connection with its code);
- background: queued without awaiting and run one after another after the fact, so they never
  hold up a fan-out; errors are logged; calls beyond a bounded queue are dropped (and counted);
- logged: awaited in priority order, each one's errors logged, the next one still runs.

Adding a hook is one place, this module: its payload class, its method on `Extension` (with
`@hook(kind)`) and its name in `HookName`. The runner reads the kinds off `Extension`, and the
module refuses to import if the names and the methods disagree.

An extension can also serve HTTP routes: `Extension.routes()`.

The HTTP API asks `on_request` hooks in priority order; the first that returns an `Access` decides.
When none does: a server with no authentication at all (no on_authenticate or on_request hook,
no token auth) answers everyone, as its WebSocket route does; any other answers 401. So a server
whose connections need a token never shows its documents over HTTP to anyone without one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Literal, TypeVar, cast, get_args

import anyio
from anyio.abc import TaskGroup
from pycrdt import Doc
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from . import logs
from .access import Access
from .counts import Counts
from .documents import DocumentService
from .errors import CloseCode, CollabError, Reject, StartupError
from .events.feed import EventFeed
from .settings import Settings
from .view import DocumentView

log = logging.getLogger(__name__)

__all__ = [
    "HOOKS",
    "ConnectionInfo",
    "Extension",
    "HookName",
    "HookRunner",
    "Kind",
    "OnAuthenticatePayload",
    "OnChangePayload",
    "OnConnectPayload",
    "OnDisconnectPayload",
    "OnLoadDocumentPayload",
    "OnRequestPayload",
    "OnShutdownPayload",
    "OnStartupPayload",
    "OnStatelessPayload",
    "OnStoreDocumentPayload",
    "OnUnloadDocumentPayload",
    "Reject",
]

HookName = Literal[
    "on_startup",
    "on_connect",
    "on_authenticate",
    "on_load_document",
    "on_change",
    "on_store_document",
    "on_disconnect",
    "on_unload_document",
    "on_request",
    "on_shutdown",
    "on_stateless",
]


class Kind(Enum):
    """How the runner calls a hook (see the module docstring)."""

    INLINE = "inline"
    BACKGROUND = "background"
    LOGGED = "logged"


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
class OnStartupPayload:
    """The server is starting: the store is open, the hub runs, nothing is served yet.

    `task_group` belongs to the app's lifespan: tasks started in it (workers, broker
    connections) run while the server does and are cancelled after on_shutdown. A task that
    raises stops the server: catch what you can handle. `documents` is the one door to the
    documents (keep it for later); `events` the change feed (an extension's sinks are added
    to it here); `app.state` is shared with your routes.
    """

    app: Starlette
    settings: Settings
    documents: DocumentService
    task_group: TaskGroup
    events: EventFeed  # the change feed: add sinks here (events.add_sink), read the outbox


@dataclass(frozen=True, slots=True)
class OnShutdownPayload:
    """The server is stopping: clients are closed, every room is flushed, the background hooks
    have run; the store is still open."""

    app: Starlette
    settings: Settings
    documents: DocumentService


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
    """`update` is the change as its client sent it (or as the documents service applied it:
    `connection` None). `view` reads the room's document as it is when read: with this change,
    and perhaps later ones."""

    document: str
    update: bytes
    connection: ConnectionInfo | None
    view: DocumentView


@dataclass(frozen=True, slots=True)
class OnStoreDocumentPayload:
    """`view` reads the room's document as it is when read: it holds at least every update
    committed so far (and perhaps some not yet committed)."""

    document: str
    updates: int  # how many updates were just committed
    view: DocumentView


@dataclass(frozen=True, slots=True)
class OnDisconnectPayload:
    document: str
    connection: ConnectionInfo
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class OnStatelessPayload:
    """A stateless message a client sent about `document` (the Hocuspocus protocol's
    `sendStateless`: any string, nothing stored). Answer it, or tell the document's other
    clients, with `DocumentService.send_stateless` (kept from on_startup's `documents`)."""

    document: str
    payload: str
    connection: ConnectionInfo  # its `id` is what send_stateless's `only` / `exclude` take


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


_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])
_KINDS: dict[str, Kind] = {}  # filled by @hook, in the order Extension defines them


def hook(kind: Kind) -> Callable[[_Method], _Method]:
    """Marks a method of `Extension` as a hook of that kind."""

    def mark(method: _Method) -> _Method:
        _KINDS[method.__name__] = kind
        return method

    return mark


class Extension:
    """Base class: every hook does nothing. Override only what you need."""

    priority: int = 100

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP routes this extension serves (Starlette `Route`, `Mount`, ...), mounted into
        the app before the editor's pages, each under its own path: `/api/...` if it belongs
        to the API. A route that shows documents asks `collab.access_of(request)` what the
        caller may see, as the API's routes do; the documents service is
        `request.app.state.documents`."""
        return ()

    @hook(Kind.INLINE)
    async def on_startup(self, payload: OnStartupPayload) -> None:
        """Before the server serves anything. Raising stops it from starting (StartupError,
        naming the extension); the on_shutdown hooks still run."""

    @hook(Kind.INLINE)
    async def on_connect(self, payload: OnConnectPayload) -> None:
        """After the socket was accepted, before authentication. May raise Reject(code,
        reason): the connection is closed with it."""

    @hook(Kind.INLINE)
    async def on_authenticate(self, payload: OnAuthenticatePayload) -> Mapping[str, Any] | None:
        """With the `?token=` query parameter. Returns a context dict (merged into
        payload.connection.context); may set payload.connection.read_only; raises Reject
        (4401/4403) to refuse."""
        return None

    @hook(Kind.INLINE)
    async def on_load_document(self, payload: OnLoadDocumentPayload) -> None:
        """On the first join of a document: may fill payload.doc (what it writes is stored like
        any edit). Raising closes the joiners with 1011."""

    @hook(Kind.BACKGROUND)
    async def on_change(self, payload: OnChangePayload) -> None:
        """After an update was applied and fanned out (never in front of it)."""

    @hook(Kind.BACKGROUND)
    async def on_store_document(self, payload: OnStoreDocumentPayload) -> None:
        """After updates of the document were committed to the store."""

    @hook(Kind.LOGGED)
    async def on_disconnect(self, payload: OnDisconnectPayload) -> None:
        """A connection closed (with its code); bounded to 5 s."""

    @hook(Kind.BACKGROUND)
    async def on_unload_document(self, payload: OnUnloadDocumentPayload) -> None:
        """After the document's final flush, when it left memory."""

    @hook(Kind.INLINE)
    async def on_request(self, payload: OnRequestPayload) -> Access | None:
        """An HTTP API request (/api/...), before it is answered: return an `Access` (the
        documents the caller may see), None for no opinion; raise Reject (4401 -> HTTP 401,
        4403 -> 403)."""
        return None

    @hook(Kind.LOGGED)
    async def on_shutdown(self, payload: OnShutdownPayload) -> None:
        """After the last client was closed and every room flushed, before the store closes;
        all of them together bounded by the shutdown deadline."""

    @hook(Kind.BACKGROUND)
    async def on_stateless(self, payload: OnStatelessPayload) -> None:
        """A client sent a stateless message (Hocuspocus protocol); after the fact, never in
        front of the socket. Nothing is forwarded unless a hook sends it on."""


# Every hook's name and kind, in the order Extension defines them.
HOOKS: Final = cast("Mapping[HookName, Kind]", dict(_KINDS))
if set(HOOKS) != set(get_args(HookName)):
    _differ = sorted(set(HOOKS) ^ set(get_args(HookName)))
    raise TypeError(f"HookName and the hooks of Extension differ: {_differ}")

BACKGROUND_QUEUE = 10_000  # pending background calls before they are dropped

Hook = Callable[[Any], Awaitable[Any]]


def _owner(method: Hook) -> str:
    owner = getattr(method, "__self__", None)
    return type(owner).__name__ if owner is not None else getattr(method, "__qualname__", "?")


class HookRunner:
    """Runs each hook over the extensions that override it, highest priority first.

    `run(name, payload)` runs any hook by its kind; `enqueue` schedules a background one. The
    typed methods (`connect`, `authenticate`, ...) are the core's call sites: mypy checks the
    payload each passes; a new hook needs none of its own.
    """

    def __init__(self, extensions: Iterable[Extension] = (), counts: Counts | None = None) -> None:
        self.counts = counts  # each call's duration and failure, when metrics are on
        ordered = sorted(extensions, key=lambda e: -e.priority)  # stable: equal keep order
        self._by_hook: dict[HookName, list[Hook]] = {
            name: [
                getattr(ext, name)
                for ext in ordered
                if getattr(type(ext), name) is not getattr(Extension, name)
            ]
            for name in HOOKS
        }
        send, receive = anyio.create_memory_object_stream[tuple[HookName, Any]](BACKGROUND_QUEUE)
        self._send, self._receive = send, receive
        self._drained = anyio.Event()
        self._running = False
        self.dropped = 0

    def has(self, name: HookName) -> bool:
        return bool(self._by_hook[name])

    async def run(self, name: HookName, payload: Any) -> None:
        """Run one hook now, as its kind says (a background one too: awaited, errors logged)."""
        if HOOKS[name] is Kind.INLINE:
            for method in self._by_hook[name]:
                await self._call(name, method, payload)
        else:
            await self._run_logged(name, payload)

    async def first(self, name: HookName, payload: Any) -> Any:
        """The first result that is not None (later extensions are not asked), or None."""
        for method in self._by_hook[name]:
            result = await self._call(name, method, payload)
            if result is not None:
                return result
        return None

    async def _call(self, name: HookName, method: Hook, payload: Any) -> Any:
        """One extension's hook, timed, its failure counted (a Reject is an answer, not a
        failure) when metrics are on."""
        counts = self.counts
        if counts is None:
            return await method(payload)
        started = time.perf_counter()
        try:
            return await method(payload)
        except CollabError:
            raise
        except Exception:
            counts.count("hook_errors", name)
            raise
        finally:
            counts.observe("hook", time.perf_counter() - started, name)

    # -- the core's call sites -----------------------------------------------------------------

    async def startup(self, payload: OnStartupPayload) -> None:
        for method in self._by_hook["on_startup"]:
            try:
                await self._call("on_startup", method, payload)
            except Exception as exc:
                raise StartupError(f"on_startup of {_owner(method)} failed: {exc!r}") from exc

    async def shutdown(self, payload: OnShutdownPayload, deadline_s: float) -> None:
        """Every on_shutdown, errors logged, all of them within `deadline_s` (shielded: the
        lifespan may be cancelled around it)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(deadline_s) as scope:
            await self._run_logged("on_shutdown", payload)
        if scope.cancelled_caught:
            log.error("on_shutdown hooks still running after %.1f s: abandoned", deadline_s)

    async def connect(self, payload: OnConnectPayload) -> None:
        await self.run("on_connect", payload)

    async def authenticate(self, payload: OnAuthenticatePayload) -> None:
        for method in self._by_hook["on_authenticate"]:
            context = await self._call("on_authenticate", method, payload)
            if context:
                payload.connection.context.update(context)

    async def request(self, payload: OnRequestPayload) -> Access | None:
        """The first `Access` an on_request hook grants, or None; a Reject propagates."""
        access: Access | None = await self.first("on_request", payload)
        return access

    async def load_document(self, payload: OnLoadDocumentPayload) -> None:
        await self.run("on_load_document", payload)

    async def disconnect(self, payload: OnDisconnectPayload) -> None:
        await self.run("on_disconnect", payload)

    # -- background hooks --------------------------------------------------------------------

    def enqueue(self, name: HookName, payload: Any) -> None:
        """Schedule a background hook without awaiting: they run one after another in
        `run_background`, never in front of a fan-out."""
        if HOOKS[name] is not Kind.BACKGROUND:
            raise ValueError(f"{name} is not a background hook")
        if not self._by_hook[name]:
            return
        try:
            self._send.send_nowait((name, payload))
        except anyio.ClosedResourceError:
            log.warning("%s after shutdown: not run", name)
        except anyio.WouldBlock:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("%s hooks are too slow: %d calls dropped", name, self.dropped)

    async def run_background(self) -> None:
        self._running = True
        try:
            async with self._receive:
                async for name, payload in self._receive:
                    await self._run_logged(name, payload)
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

    async def _run_logged(self, name: HookName, payload: Any) -> None:
        for method in self._by_hook[name]:
            try:
                await self._call(name, method, payload)
            except Exception:
                log.exception(
                    "%s hook %s failed",
                    name,
                    getattr(method, "__qualname__", method),
                    extra=_context(name, payload),
                )


def _context(name: HookName, payload: Any) -> dict[str, Any]:
    """A failing hook's log context: the hook, and the connection or document it ran for."""
    connection = getattr(payload, "connection", None)
    document = getattr(payload, "document", None)
    if isinstance(connection, ConnectionInfo):
        return logs.context(connection.id, hook=name, document=document, client=connection.client)
    return {"hook": name, "document": document} if isinstance(document, str) else {"hook": name}


def reject_from(exc: BaseException, context: Mapping[str, Any] | None = None) -> CollabError:
    """What a hook raised, as the error that closes the connection (`context`: the log's
    context of that connection)."""
    if isinstance(exc, CollabError):
        return exc
    log.error("hook failed", exc_info=exc, extra=dict(context or {}, code=CloseCode.INTERNAL_ERROR))
    return CollabError("internal error", CloseCode.INTERNAL_ERROR)
