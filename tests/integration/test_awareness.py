"""Awareness: relayed to everyone, owned per connection, removed the moment a socket goes."""

from __future__ import annotations

import json

import anyio
import pytest

from collab import protocol as p
from tests.conftest import every_server
from tests.ywire import YClient

pytestmark = [pytest.mark.anyio, pytest.mark.integration, every_server]

ADA = {"user": {"name": "Ada", "color": "#30bced"}, "cursor": None}
BOB = {"user": {"name": "Bob", "color": "#6eeb83"}}


async def test_awareness_reaches_everyone_including_the_sender_and_late_joiners(server):
    async with YClient(server.url, "doc") as a, YClient(server.url, "doc") as b:
        await a.wait_for(lambda: a.synced)
        await b.wait_for(lambda: b.synced)
        await a.set_awareness(ADA)
        await b.wait_for(lambda: b.present().get(a.client_id) == ADA)
        await a.wait_for(lambda: a.present().get(a.client_id) == ADA)  # the echo
        async with YClient(server.url, "doc") as late:
            # Sent on join, not after the next 15 s renewal.
            await late.wait_for(lambda: late.present().get(a.client_id) == ADA, timeout=1)


async def test_clean_close_removes_exactly_that_users_state(server):
    async with YClient(server.url, "doc") as b:
        async with YClient(server.url, "doc") as a:
            await a.set_awareness(ADA)
            await b.set_awareness(BOB)
            await b.wait_for(lambda: a.client_id in b.present() and b.client_id in b.present())
        # a closed its socket without sending a null state: the server removes it for a.
        await b.wait_for(lambda: a.client_id not in b.present(), timeout=1)
        assert b.present() == {b.client_id: BOB}


async def test_abrupt_socket_drop_removes_state(server):
    async with YClient(server.url, "doc") as b:
        a = YClient(server.url, "doc")
        await a.__aenter__()
        try:
            await a.set_awareness(ADA)
            await b.wait_for(lambda: a.client_id in b.present())
            a.abort()  # TCP reset, no close frame, no awareness-null frame
            await b.wait_for(lambda: a.client_id not in b.present(), timeout=2)
        finally:
            await a.__aexit__(None, None, None)
        # The removal is a null state at the same clock: y-protocols peers accept that.
        removal = p.decode_awareness_update(p.parse_awareness(b.received[-1]))
        assert removal == [p.AwarenessEntry(a.client_id, 1, p.NULL_STATE)]


async def test_y_websocket_disconnect_frame_removes_state(server):
    async with YClient(server.url, "doc") as a, YClient(server.url, "doc") as b:
        await a.set_awareness(ADA)
        await b.wait_for(lambda: a.client_id in b.present())
        await a.set_awareness(None)
        await b.wait_for(lambda: a.client_id not in b.present())


async def test_relayed_states_are_not_removed_with_the_relaying_connection(server):
    async with YClient(server.url, "doc") as a, YClient(server.url, "doc") as c:
        await a.set_awareness(ADA)
        await c.wait_for(lambda: a.client_id in c.present())
        async with YClient(server.url, "doc") as relay:
            await relay.wait_for(lambda: a.client_id in relay.present())
            # A y-websocket client re-sends the remote states it applied: the same clock.
            clock, state = relay.awareness[a.client_id]
            entry = p.AwarenessEntry(a.client_id, clock, json.dumps(state).encode())
            await relay.send(p.awareness_message(p.encode_awareness_update([entry])))
            await relay.set_awareness(BOB)
            await c.wait_for(lambda: relay.client_id in c.present())
        await c.wait_for(lambda: relay.client_id not in c.present(), timeout=1)
        assert c.present().get(a.client_id) == ADA


async def test_reconnecting_client_reappears_at_once(server):
    """yjs/y-websocket#122: a client that reconnects with the clock it was removed at. Its
    peers hold that clock as removed; the server reminds it of the removal, and the client
    (y-protocols) answers at the next clock, which they take."""
    async with YClient(server.url, "doc") as b:
        a = YClient(server.url, "doc", client_id=4242)
        async with a:
            await a.set_awareness(ADA)
            # a is new here, so it was reminded too (peers may know it from before a restart)
            await b.wait_for(lambda: b.awareness.get(4242) == (2, ADA))
            assert a.reminded == 1 and a.clock == 2
        await b.wait_for(lambda: 4242 not in b.present(), timeout=1)
        assert b.awareness[4242] == (2, None)  # removed at clock 2

        again = YClient(server.url, "doc", client_id=4242)
        again.clock = 1  # set_awareness adds one: the clock it was removed at
        async with again:
            await again.set_awareness(ADA)
            await b.wait_for(lambda: b.present().get(4242) == ADA, timeout=1)
            assert again.reminded == 1 and b.awareness[4242] == (3, ADA)
            # its next change is taken, at the clock it knows
            await again.set_awareness({**ADA, "cursor": 5})
            await b.wait_for(lambda: b.awareness.get(4242) == (4, {**ADA, "cursor": 5}), timeout=1)


async def test_a_client_that_ignores_the_reminder_still_shows_its_next_change(server):
    """A client that does not follow y-protocols' rule stays hidden only until its next
    change; the server never takes a state at a clock its peers hold as removed."""
    async with YClient(server.url, "doc") as b:
        a = YClient(server.url, "doc", client_id=77)
        async with a:
            await a.set_awareness(ADA)
            await b.wait_for(lambda: 77 in b.present())
        await b.wait_for(lambda: 77 not in b.present(), timeout=1)
        again = YClient(server.url, "doc", client_id=77)
        again.answer_reminders = False
        again.clock = b.awareness[77][0] - 1
        async with again:
            await again.set_awareness(ADA)
            await again.wait_for(lambda: again.reminded == 1)
            assert 77 not in b.present()
            await again.set_awareness({**ADA, "cursor": 1})
            await b.wait_for(lambda: b.present().get(77) == {**ADA, "cursor": 1}, timeout=1)


async def test_query_awareness_returns_all_states(server):
    async with YClient(server.url, "doc") as a, YClient(server.url, "doc") as b:
        await a.set_awareness(ADA)
        await b.wait_for(lambda: a.client_id in b.present())
        await b.wait_for(lambda: b.synced)
        count = len(b.received)
        await b.send(p.QUERY_AWARENESS_MESSAGE)
        await b.wait_for(lambda: len(b.received) > count)
        reply = b.received[count]
        assert reply[0] == p.MSG_AWARENESS, reply
        assert {e.client_id for e in p.decode_awareness_update(p.parse_awareness(reply))} == {
            a.client_id
        }


async def test_idle_connection_is_closed_4408_and_its_cursor_removed(server_with):
    async with server_with(idle_timeout_s=1.5, heartbeat_s=0.5) as srv:
        async with YClient(srv.url, "doc") as watcher, YClient(srv.url, "doc") as idle:
            await idle.set_awareness(ADA)
            await watcher.wait_for(lambda: idle.client_id in watcher.present())
            # watcher keeps talking (as y-websocket does every 15 s); idle says nothing more.
            with anyio.fail_after(5):
                while idle.close_code is None:
                    await watcher.send(bytes([p.MSG_AWARENESS, 1, 0]))
                    await anyio.sleep(0.2)
            assert idle.close_code == 4408
            await watcher.wait_for(lambda: idle.client_id not in watcher.present())
            assert watcher.close_code is None


async def test_server_sends_a_heartbeat_on_an_idle_connection(server_with):
    async with server_with(heartbeat_s=1.0) as srv, YClient(srv.url, "doc") as a:
        await a.wait_for(lambda: a.synced)
        count = len(a.received)
        await a.wait_for(lambda: p.HEARTBEAT_MESSAGE in a.received[count:], timeout=3)
