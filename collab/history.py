"""Version history of the documents this process serves: automatic versions, and versions on
demand (named, restore) for the documents service.

A version is a stored state: the full v1 update of the document at that moment and its state
vector (storage: `add_version`). Compaction never touches versions, so every one stays
reachable; the cost is the bytes of one state per version (bench/history.py measures it).

Automatic versions follow the editing this process's clients do, as its saver commits it
(`Saver.on_committed`): once editing of a document pauses for `version_pause_s`, at least every
`version_every_s` while it goes on, and when a changed document unloads or the server shuts
down; and a document loaded with an update log checks whether its latest version holds it
(after a crash, editing may be in no version). The hub's ticker drives it (`tick`); the version
is written by a task, never on the rooms' hot path. A version is stored only when the document
changed since its latest one (state vectors, then the states: storage's
`add_version_if_changed`, in one transaction the processes take turns with), so in cluster
mode, where each process versions what its own clients did, two processes that saw the same
editing store it once. After each automatic version the older ones are thinned by the
retention rules (collab/retention.py).

Each version lists who edited since the previous one: the authors the saver committed for the
document (`Saver.take_authors`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any
from weakref import WeakValueDictionary

import anyio
from anyio.abc import TaskGroup
from pycrdt import get_state

from storage import DocumentStore, VersionInfo, restore

from .errors import DocumentNotFound
from .retention import parse_rules, thin
from .saver import Saver
from .settings import Settings
from .subdocs import keep_options

if TYPE_CHECKING:
    from .room import Room

log = logging.getLogger(__name__)

# How long taking a version waits for the document's edits to be committed first.
COMMIT_WAIT_S = 10.0


def now_ms() -> int:
    return int(time.time() * 1000)


class Activity:
    """Editing of one document not in a version yet: when it began, when it was last seen."""

    __slots__ = ("first", "last")

    def __init__(self, now: float) -> None:
        self.first = now
        self.last = now


class History:
    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        saver: Saver,
        task_group: TaskGroup,
        room: Callable[[str], Room | None],
    ) -> None:
        self.store = store
        self.saver = saver
        self.pause_s = settings.version_pause_s
        self.every_s = settings.version_every_s
        self.rules = parse_rules(settings.version_retention)
        self._tg = task_group
        self._room = room
        self._active: dict[str, Activity] = {}  # documents edited since their last version
        # One version of a document at a time (a lock lives while someone holds or awaits it).
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()
        self._writing = 0  # version tasks running
        self._written = asyncio.Event()
        self._written.set()
        self.taken = 0  # versions stored since start
        saver.on_committed.append(self._committed)

    # -- what happens to documents -----------------------------------------------------------

    def _committed(self, name: str, edits: int) -> None:
        """The saver committed edits of `name` (from this process's clients, or the API)."""
        now = time.monotonic()
        activity = self._active.get(name)
        if activity is None:
            self._active[name] = Activity(now)
        else:
            activity.last = now

    def tick(self, now: float) -> None:
        """The hub's ticker: version the documents whose editing paused, or went on long."""
        for name, activity in list(self._active.items()):
            if now - activity.last >= self.pause_s or now - activity.first >= self.every_s:
                del self._active[name]  # (editing from now on starts a new activity)
                self._spawn(self._take_auto, name)

    def loaded(self, name: str, logged: bool) -> None:
        """`name` was loaded, with rows in its update log (`logged`): they may hold editing no
        version has (the process that wrote them was killed before its pause), so it counts as
        edited now; if its latest version holds it all, no version is stored."""
        if logged and name not in self._active:
            self._active[name] = Activity(time.monotonic())

    def unloading(self, room: Room) -> None:
        """`room` unloads (clean, empty): version it if it changed since its last version.
        Its state is taken now; the version is written by a task."""
        if self._active.pop(room.name, None) is None:
            return
        state, vector = room.encode_update(), room.doc.get_state()
        authors = self.saver.take_authors(room.name)
        self._spawn(self._store, room.name, state, vector, "auto", None, authors, True)

    def forget(self, name: str) -> None:
        """`name` is deleted: no version of what it was."""
        self._active.pop(name, None)
        self.saver.take_authors(name)

    async def close(self, rooms: Collection[Room]) -> None:
        """At shutdown, once everything is committed: version the changed documents still
        open, and wait for the versions being written."""
        for room in rooms:
            if room.name in self._active:
                self.unloading(room)
        await self._written.wait()

    # -- taking versions ---------------------------------------------------------------------

    async def take(self, name: str, kind: str, label: str | None = None) -> VersionInfo:
        """A version of `name` now (kind "named" or "restore", stored even if nothing changed):
        from its room when it is open (after its edits are committed), else from the store.
        DocumentNotFound when it is neither open nor stored."""
        room = self._room(name)
        if room is None:
            return await version_from_store(self.store, name, kind, label)
        with anyio.move_on_after(COMMIT_WAIT_S):
            await self.saver.wait_committed(name)
        self._active.pop(name, None)  # this version holds the editing so far
        state, vector = room.encode_update(), room.doc.get_state()
        authors = self.saver.take_authors(name)
        info = await self._store(name, state, vector, kind, label, authors, False)
        assert info is not None
        return info

    async def _take_auto(self, name: str) -> None:
        room = self._room(name)
        if room is None:  # unloaded meanwhile: `unloading` took care of it
            return
        with anyio.move_on_after(COMMIT_WAIT_S):
            await self.saver.wait_committed(name)
        state, vector = room.encode_update(), room.doc.get_state()
        authors = self.saver.take_authors(name)
        await self._store(name, state, vector, "auto", None, authors, True)

    async def _store(
        self,
        name: str,
        state: bytes,
        vector: bytes,
        kind: str,
        label: str | None,
        authors: Collection[str],
        only_if_changed: bool,
    ) -> VersionInfo | None:
        """Store a version (an automatic one only if the document changed since its latest),
        then thin the automatic ones."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            add = self.store.add_version_if_changed if only_if_changed else self.store.add_version
            info = await add(name, state, vector, kind, label, sorted(authors), now_ms())
            if info is None:
                log.debug("no version of %r: unchanged since the latest", name)
                return None
            self.taken += 1
            log.info("version %d of %r (%s, %d bytes)", info.id, name, kind, info.size_bytes)
            if kind == "auto":
                await self._thin(name)
        return info

    async def _thin(self, name: str) -> None:
        versions: list[VersionInfo] = []
        before: int | None = None
        while page := await self.store.list_versions(name, 1000, before):
            versions.extend(page)
            before = page[-1].id
        drop = thin(versions, now_ms(), self.rules)
        if drop:
            deleted = await self.store.delete_versions(name, drop)
            log.info("retention: %d automatic versions of %r deleted", deleted, name)

    def _spawn(self, job: Callable[..., Any], *args: Any) -> None:
        """Run `job(*args)` in a task of the hub's (a failure is logged, not raised)."""
        self._writing += 1
        self._written.clear()
        try:
            self._tg.start_soon(self._run, job, args)
        except RuntimeError:  # the task group is closing
            self._done()

    async def _run(self, job: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await job(*args)
        except Exception:
            log.exception("storing a version of %r failed", args[0])
        finally:
            self._done()

    def _done(self) -> None:
        self._writing -= 1
        if not self._writing:
            self._written.set()


async def version_from_store(
    store: DocumentStore,
    name: str,
    kind: str,
    label: str | None = None,
    authors: Collection[str] = (),
) -> VersionInfo:
    """A version of `name` as the store holds it (no server: the CLI; or a document not
    open); DocumentNotFound when it holds nothing."""
    stored = await store.load(name)
    if stored.empty:
        raise DocumentNotFound(f"no document named {name!r}")
    state = await restore(stored, keep_options)
    return await store.add_version(
        name, state, get_state(state), kind, label, sorted(authors), now_ms()
    )
