"""Version history on a real server: two users (tokens with different subjects) edit, automatic
versions appear after a pause (a short one here), each naming who edited since the previous
one; a compaction in between keeps every version loadable; named versions; a restart keeps
them all, and a document changed right before shutdown gets its version then; retention thins
automatic versions; the store knows which Yjs client id was whose. On SQLite and PostgreSQL, and
in cluster mode: two processes (Redis bus, PostgreSQL store) editing one document store each
state once.

Everything waits on conditions with a deadline (the store polled), never on a sleep.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest
from pycrdt import Doc, Text
from sqlalchemy import select

from collab import Settings
from collab.extensions.token_auth import mint_token
from storage import PendingUpdate, SqlStore, VersionInfo, open_store
from storage.models import Update
from tests.conftest import RunningServer, serving
from tests.integration.test_cluster import (  # noqa: F401 (fixtures)
    RedisServer,
    Spawn,
    cluster_of,
    redis,
    spawn,
)
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET = "test-secret-0123456789-abcdefghijklmnop"
NAME = "team/notes"
POLL_S = 0.02


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "sqlite":
        return settings.database_url
    url: str = request.getfixturevalue("pg_database")
    return url


def history_settings(settings: Settings, database_url: str, **changes: Any) -> Settings:
    defaults = {"version_pause_s": 0.2, "version_every_s": 60.0}
    return settings.replace(
        database_url=database_url, auth_secret=SECRET, **{**defaults, **changes}
    )


def token(user: str, doc: str = NAME) -> str:
    return mint_token(doc=doc, write=True, ttl_s=300, user=user, secret=SECRET)


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    """Poll `check()` until it returns something truthy (returned); fail after `timeout`."""
    try:
        with anyio.fail_after(timeout):
            while not (found := await check()):
                await anyio.sleep(POLL_S)
            return found
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None


@asynccontextmanager
async def writer(url: str, user: str, client_id: int) -> AsyncIterator[YClient]:
    doc: Doc[Any] = Doc(client_id=client_id)
    async with YClient(url, NAME, doc=doc, query=f"token={token(user)}") as client:
        await client.wait_for(lambda: client.synced or client.close_code is not None)
        assert client.close_code is None, (client.close_code, client.close_reason)
        yield client


def type_into(client: YClient, value: str) -> None:
    text = client.doc.get("t", type=Text)
    text.insert(len(text), value)


def text_of(state: bytes) -> str:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    return str(doc.get("t", type=Text))


async def room_text(srv: RunningServer) -> str:
    room = srv.hub.room(NAME)
    return "" if room is None else str(room.doc.get("t", type=Text))


async def versions_with(store: SqlStore, check: Callable[[list[VersionInfo]], bool]) -> Any:
    versions = await store.list_versions(NAME)
    return versions if check(versions) else None


async def version_text(store: SqlStore, version: VersionInfo) -> str:
    loaded = await store.load_version(NAME, version.id)
    assert loaded is not None, f"version {version.id} cannot be loaded"
    return text_of(loaded[1])


# -- one process -----------------------------------------------------------------------------


async def test_two_users_automatic_and_named_versions_compaction_and_restart(
    settings: Settings, database_url: str
) -> None:
    config = history_settings(settings, database_url)
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        async with writer(srv.url, "alice", 1001) as alice, writer(srv.url, "bob", 2002) as bob:
            type_into(alice, "Hello ")
            type_into(bob, "world")
            await until(lambda: _has(room_text(srv), "Hello ", "world"), "both edits applied")
            await until(lambda: _latest_has(store, "Hello ", "world"), "an automatic version")
            first = await store.list_versions(NAME)
            assert [v.kind for v in first] == ["auto"] * len(first)
            assert set().union(*(v.authors for v in first)) == {"alice", "bob"}

            # The log compacted into a snapshot, then more edits by bob alone.
            srv.hub.saver.request_compaction(NAME)
            await srv.hub.saver.flush()
            assert await _snapshot_of(store)
            for i in range(12):
                type_into(bob, f" {i}")
            await until(lambda: _has(room_text(srv), " 11"), "bob's edits applied")
            await until(lambda: _latest_has(store, " 11"), "a version of bob's edits")
            latest = (await store.list_versions(NAME))[0]
            assert latest.authors == ("bob",)
            named = await srv.hub.take_version(NAME, "named", "release 1")
            assert named.label == "release 1" and named.kind == "named"

        assert await store.clients(NAME) == {1001: "alice", 2002: "bob"}
        before_restart = await store.list_versions(NAME)
        texts = [await version_text(store, v) for v in before_restart]
        assert texts[-1] in ("Hello ", "world", "Hello world", "worldHello ")
        assert texts[0] == texts[1] == await room_text(srv)  # named after the last auto
        assert texts[0].endswith(" 11")

    # A restart: everything is still there and loads.
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        assert await store.list_versions(NAME) == before_restart
        assert [await version_text(store, v) for v in before_restart] == texts
        assert await store.clients(NAME) == {1001: "alice", 2002: "bob"}


async def test_a_document_changed_before_shutdown_gets_its_version_then(
    settings: Settings, database_url: str
) -> None:
    config = history_settings(settings, database_url, version_pause_s=3600.0)
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        async with writer(srv.url, "carol", 3003) as carol:
            type_into(carol, "last words")
            await until(lambda: _has(room_text(srv), "last words"), "the edit applied")
            await srv.hub.persisted(NAME)  # committed: the log holds it now
            assert (await store.load(NAME)).updates
        assert await store.list_versions(NAME) == []  # the pause is an hour
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        [version] = await store.list_versions(NAME)
        assert version.kind == "auto" and version.authors == ("carol",)
        assert await version_text(store, version) == "last words"


async def test_editing_that_never_pauses_is_versioned_every_n_seconds(
    settings: Settings, database_url: str
) -> None:
    config = history_settings(settings, database_url, version_pause_s=3600.0, version_every_s=1)
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        async with writer(srv.url, "frank", 8008) as frank:
            typed = 0
            with anyio.fail_after(15):
                while len(await store.list_versions(NAME)) < 2:
                    type_into(frank, ".")  # (the pause never comes: a keystroke every 50 ms)
                    typed += 1
                    await anyio.sleep(0.05)
        versions = await store.list_versions(NAME)
        assert [v.authors for v in versions] == [("frank",), ("frank",)]
        texts = [await version_text(store, v) for v in versions]
        assert 0 < len(texts[1]) < len(texts[0]) <= typed


async def test_editing_a_crash_left_unversioned_is_versioned_once_loaded(
    settings: Settings, database_url: str
) -> None:
    """Rows in the log that no version holds (their process was killed before its pause) are
    versioned once the document is loaded again; loading it again then stores nothing."""
    config = history_settings(settings, database_url, unload_grace_s=0.1)
    store = await open_store(database_url)
    try:
        doc: Doc[Any] = Doc(client_id=9009)
        doc.get("t", type=Text).insert(0, "written before a crash")
        await store.append([PendingUpdate(NAME, doc.get_update(), 1, "gina")])
    finally:
        await store.close()
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        await srv.hub.open(NAME)
        [version] = await until(lambda: versions_with(store, bool), "a version")
        assert await version_text(store, version) == "written before a crash"
        await until(lambda: _unloaded(srv), "the room unloaded")
        taken = srv.hub.history.taken
        await srv.hub.open(NAME)  # loaded again: its version holds it all
        await until(lambda: _unloaded(srv), "the room unloaded again")
        assert srv.hub.history.taken == taken
        assert await store.list_versions(NAME) == [version]


async def test_unchanged_documents_get_no_new_automatic_version(
    settings: Settings, database_url: str
) -> None:
    config = history_settings(settings, database_url, unload_grace_s=0.1)
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        async with writer(srv.url, "dave", 4004) as dave:
            type_into(dave, "x")
            await until(lambda: versions_with(store, lambda v: len(v) == 1), "a version")
            # A deletion adds no item (the state vector stays): still a change.
            del dave.doc.get("t", type=Text)[0:1]
            await until(lambda: versions_with(store, lambda v: len(v) == 2), "the deletion's")
            # Unloading the room (nothing changed since) makes no version.
            taken = srv.hub.history.taken
        await until(lambda: _unloaded(srv), "the room unloaded")
        assert srv.hub.history.taken == taken
        assert len(await store.list_versions(NAME)) == 2
        assert await version_text(store, (await store.list_versions(NAME))[0]) == ""


async def test_retention_thins_automatic_versions_and_keeps_named_ones(
    settings: Settings, database_url: str
) -> None:
    """With '1s:all,forever:1h', an automatic version older than a second goes as soon as a
    newer one of the same hour is stored; named ones stay."""
    config = history_settings(settings, database_url, version_retention="1s:all,forever:1h")
    async with serving(config) as srv:
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        async with writer(srv.url, "erin", 5005) as erin:
            type_into(erin, "a")
            [first] = await until(lambda: versions_with(store, lambda v: len(v) == 1), "first")
            named = await srv.hub.take_version(NAME, "named", "keep me")
            await until(lambda: _older_than(first, 1100), "a second passing")
            type_into(erin, "b")
            listed = await until(
                lambda: versions_with(store, lambda v: v[0].kind == "auto" and v[0] != first),
                "a second automatic version",
            )
        second = listed[0]
        if second.created_at_ms // 3_600_000 == first.created_at_ms // 3_600_000:
            # (thinned right after the second one was stored)
            listed = await until(
                lambda: versions_with(store, lambda v: first not in v), "the first one thinned"
            )
            assert [v.id for v in listed] == [second.id, named.id]
        else:  # the hour turned between the two: each is the newest of its hour
            assert [v.id for v in listed] == [second.id, named.id, first.id]


async def test_server_side_updates_carry_their_author_and_anonymous_ones_none(
    settings: Settings, database_url: str
) -> None:
    async with serving(settings.replace(database_url=database_url)) as srv:  # (no auth)
        store = srv.hub.store
        assert isinstance(store, SqlStore)
        async with YClient(srv.url, NAME, doc=Doc(client_id=6006)) as anonymous:
            await anonymous.wait_for(lambda: anonymous.synced)
            type_into(anonymous, "anonymous ")
            await until(lambda: _has(room_text(srv), "anonymous "), "the edit applied")
            bot: Doc[Any] = Doc(client_id=7007)
            bot.get("t", type=Text).insert(0, "by the api ")
            room = await srv.hub.open(NAME)
            room.apply_server_update(bot.get_update(), author="api")
            await srv.hub.persisted(NAME)
            await anonymous.wait_for(lambda: "by the api" in _text(anonymous))
        assert await _log_authors(store) == [None, "api"]
        # (the saver stores a commit's new client ids after the commit, so wait for them)
        clients = await until(lambda: store.clients(NAME), "the api's client id recorded")
        assert clients == {7007: "api"}  # (an anonymous writer: unknown)


# -- two processes ---------------------------------------------------------------------------


async def test_cluster_two_processes_version_their_clients_editing_once(
    redis: RedisServer,  # noqa: F811 (the fixture)
    pg_database: str,
    spawn: Spawn,  # noqa: F811 (the fixture)
) -> None:
    flags = ("--auth-secret", SECRET, "--version-pause-s", "0.3")
    a, b = await cluster_of(spawn, redis, pg_database, 2, *flags)
    async with AsyncExitStack() as stack:
        store = await open_store(pg_database)
        stack.push_async_callback(store.close)
        alice = await stack.enter_async_context(writer(a.url, "alice", 1001))
        bob = await stack.enter_async_context(writer(b.url, "bob", 2002))
        for round_ in range(3):
            mine, theirs = f"a{round_} ", f"b{round_} "
            type_into(alice, mine)
            type_into(bob, theirs)
            await until(partial(_converged, alice, bob, mine, theirs), "converged")
            final = _text(alice)
            assert _text(bob) == final
            await until(partial(_latest_is, store, final), f"a version of round {round_}")
        # Each process versions what its own clients did, at its own tick after the pause: the
        # second to find a state stored already adds its authors to that version.
        versions = await until(
            lambda: versions_with(
                store, lambda v: set().union(*(x.authors for x in v)) == {"alice", "bob"}
            ),
            "both authors named",
        )
        states = [await version_text(store, v) for v in versions]
        # Both processes saw the same editing: each state is stored once, however many
        # processes had clients editing it.
        assert len(states) == len(set(states)), states
        assert await store.clients(NAME) == {1001: "alice", 2002: "bob"}
        for version in versions:  # every one loads
            assert (await store.load_version(NAME, version.id)) is not None


# -- helpers ---------------------------------------------------------------------------------


async def _has(text: Awaitable[str], *parts: str) -> bool:
    found = await text
    return all(part in found for part in parts)


async def _latest_has(store: SqlStore, *parts: str) -> bool:
    versions = await store.list_versions(NAME, limit=1)
    if not versions:
        return False
    text = await version_text(store, versions[0])
    return all(part in text for part in parts)


async def _log_authors(store: SqlStore) -> list[str | None]:
    async with store.engine.connect() as conn:
        found = await conn.execute(select(Update.author).order_by(Update.id))
        return list(found.scalars().all())


async def _snapshot_of(store: SqlStore) -> bool:
    return (await store.load(NAME)).snapshot is not None


async def _unloaded(srv: RunningServer) -> bool:
    return srv.hub.room(NAME) is None


async def _older_than(version: VersionInfo, ms: int) -> bool:
    return time.time() * 1000 - version.created_at_ms > ms


async def _latest_is(store: SqlStore, text: str) -> bool:
    versions = await store.list_versions(NAME, limit=1)
    return bool(versions) and await version_text(store, versions[0]) == text


async def _converged(one: YClient, other: YClient, *parts: str) -> bool:
    return _text(one) == _text(other) and all(p in _text(one) for p in parts)


def _text(client: YClient) -> str:
    return str(client.doc.get("t", type=Text))
