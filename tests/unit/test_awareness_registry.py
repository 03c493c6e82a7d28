"""The awareness rules: y-protocols' clocks, plus ownership per connection."""

from __future__ import annotations

from collab.awareness import AwarenessRegistry
from collab.protocol import NULL_STATE, AwarenessEntry

A, B = object(), object()


def entry(cid: int, clock: int, state: bytes = b"{}") -> AwarenessEntry:
    return AwarenessEntry(cid, clock, state)


def removal(cid: int, clock: int) -> AwarenessEntry:
    return AwarenessEntry(cid, clock, NULL_STATE)


def test_newer_clocks_win_and_stale_ones_are_dropped():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 1)], A)
    # same clock, not a removal
    assert reg.apply([entry(1, 1, b'{"x":1}')], A) == ([], False, [])
    assert reg.apply([entry(1, 2, b'{"x":2}'), entry(2, 0)], A) == (
        [entry(1, 2, b'{"x":2}')],
        False,
        [],
    )
    assert reg.states() == {1: b'{"x":2}'}


def test_unknown_client_at_clock_zero_is_ignored_like_y_protocols():
    reg = AwarenessRegistry()
    assert reg.apply([entry(9, 0)], A) == ([], False, [])
    assert reg.states() == {}


def test_a_client_seen_first_is_taken_and_reminded_of_its_clock():
    """Its peers may hold that clock from before a restart: the reminder (the removal at that
    clock) makes a y-protocols client answer at the next clock, which they take."""
    reg = AwarenessRegistry()
    assert reg.apply([entry(1, 7)], A) == ([entry(1, 7)], True, [removal(1, 7)])
    assert reg.apply([entry(1, 8)], A) == ([entry(1, 8)], True, [])  # its answer
    # a cluster peer is not reminded: its process reminds its own connections
    assert reg.apply([entry(2, 3)], B, remind=False) == ([entry(2, 3)], True, [])


def test_removal_at_the_same_clock_is_accepted():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 4)], A)
    assert reg.apply([entry(1, 4, NULL_STATE)], A) == ([removal(1, 4)], True, [])
    assert reg.states() == {}


def test_closing_connection_removes_only_what_it_owns_last():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 1)], A)
    reg.apply([entry(2, 1)], B)
    reg.apply([entry(1, 2)], B)  # client 1 renewed through B (e.g. it reconnected)
    assert reg.remove_owned_by(A) == []
    assert sorted(reg.remove_owned_by(B)) == [entry(1, 2, NULL_STATE), entry(2, 1, NULL_STATE)]


def test_relayed_stale_state_does_not_take_ownership():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 3)], A)
    reg.apply([entry(1, 3)], B)  # B relays what it heard: same clock, rejected
    assert reg.remove_owned_by(B) == []
    assert reg.states() == {1: b"{}"}


def test_client_removed_by_the_server_is_reminded_and_comes_back_at_its_next_clock():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 5)], A)
    assert reg.remove_owned_by(A) == [removal(1, 5)]
    # Back on a new connection with the clock it had: not taken (the peers would ignore it),
    # and the server invents no clock for it; it is reminded of the removal.
    assert reg.apply([entry(1, 5, b'{"back":1}')], B) == ([], False, [removal(1, 5)])
    assert reg.states() == {}
    # y-protocols answers that with the next clock, which is taken and forwarded as sent.
    assert reg.apply([entry(1, 6, b'{"back":1}')], B) == ([entry(1, 6, b'{"back":1}')], True, [])
    # A change it made before the reminder arrived carries that clock too, and is taken.
    reg.remove_owned_by(B)
    assert reg.apply([entry(1, 7, b'{"moved":1}')], A)[0] == [entry(1, 7, b'{"moved":1}')]
    assert reg.states() == {1: b'{"moved":1}'}


def test_a_stale_relay_of_a_removed_client_brings_no_ghost_back():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 3)], A)
    reg.apply([entry(1, 3, NULL_STATE)], A)  # the client removed itself
    # B relays what it heard before the removal: dropped; the reminder tells B it is gone
    assert reg.apply([entry(1, 3)], B) == ([], False, [removal(1, 3)])
    assert reg.states() == {}


def test_expiry_drops_states_not_renewed(monkeypatch):
    import collab.awareness as mod

    now = [1000.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: now[0])
    reg = AwarenessRegistry(timeout_s=30)
    reg.apply([entry(1, 1)], A)
    now[0] += 29
    reg.apply([entry(2, 1)], A)
    assert reg.remove_expired() == []
    now[0] += 2
    assert reg.remove_expired() == [entry(1, 1, NULL_STATE)]
    assert reg.encode_all() is not None and set(reg.states()) == {2}


PEER = ("peer", b"p1")


def test_a_peer_taken_for_gone_gets_its_users_back_with_shifted_clocks():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 4)], PEER, remind=False)
    assert reg.remove_owned_by(PEER) == [removal(1, 4)]  # the peer fell silent
    # It is back and re-announces at the clock we removed: shown again, one clock later...
    assert reg.apply([entry(1, 4)], PEER, remind=False) == ([entry(1, 5)], False, [])
    # ...and its user's next change (clock 5 on its side) is shifted likewise, not dropped.
    assert reg.apply([entry(1, 5, b'{"x":1}')], PEER, remind=False) == (
        [entry(1, 6, b'{"x":1}')],
        False,
        [],
    )
    # Our own clients relay what they heard: never newer, never shifted.
    assert reg.apply([entry(1, 6, b'{"x":1}')], A) == ([], False, [])
    # The user moves to one of our connections: its own clock counts from there.
    assert reg.apply([entry(1, 7, b'{"y":1}')], A)[0] == [entry(1, 7, b'{"y":1}')]
    assert reg.apply([entry(1, 8, b'{"y":2}')], A) == ([entry(1, 8, b'{"y":2}')], True, [])


def test_a_peer_cannot_bring_back_a_client_that_removed_itself():
    reg = AwarenessRegistry()
    reg.apply([entry(1, 4)], PEER, remind=False)
    reg.apply([entry(1, 5, NULL_STATE)], PEER, remind=False)  # the user left
    assert reg.apply([entry(1, 4)], PEER, remind=False) == ([], False, [])


def test_removals_are_forgotten_after_a_while_so_turnover_does_not_pile_up(monkeypatch):
    """A room lives while it has clients, and every browser session is a new client id: the
    removals of a busy room's turnover are forgotten after FORGET_REMOVED_S (the ticker walks
    what is remembered every second). A client back after that is taken and reminded, as any
    client seen first."""
    import collab.awareness as mod

    now = [1000.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: now[0])
    reg = AwarenessRegistry(timeout_s=30)
    reg.apply([entry(0, 1)], B)  # one who stays, renewing
    for session in range(1, 1001):
        owner = object()
        reg.apply([entry(session, 1)], owner)
        assert reg.remove_owned_by(owner) == [removal(session, 1)]
        now[0] += 0.1
    assert (len(reg), reg.remembered) == (1, 1001)
    reg.apply([entry(0, 2)], B)
    assert reg.remove_expired() == []
    now[0] += mod.FORGET_REMOVED_S - 0.95  # all but the last 9 removals are old enough
    reg.apply([entry(0, 3)], B)
    assert reg.remove_expired() == [] and reg.remembered == 1 + 9
    assert reg.apply([entry(1000, 1)], A) == ([], False, [removal(1000, 1)])  # still known
    now[0] += 100
    assert reg.remove_expired() == [entry(0, 3, NULL_STATE)]  # (not renewed for 100 s)
    now[0] += mod.FORGET_REMOVED_S + 1
    assert reg.remove_expired() == [] and reg.remembered == 0
    assert reg.apply([entry(1000, 1)], A) == ([entry(1000, 1)], True, [removal(1000, 1)])
