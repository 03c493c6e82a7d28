"""collab/subdocs.py: a subdocument's options as its Yjs client wrote them, put back into what
yrs encodes (which drops `meta`), on updates with and without subdocuments.

ONE and TWO are Yjs 13.6.33 updates (`Y.encodeStateAsUpdate`), made by:

    const a = new Y.Doc(); a.clientID = 1001
    a.getText('t').insert(0, 'hé🎉')                 // clocks 0-3: 🎉 is two UTF-16 units
    a.transact(() => {
      const m = a.getMap('m')
      const meta = { title: 'Notes', n: 1, tags: ['a', 'b'] }
      m.set('notes', new Y.Doc({ guid: 'g-notes', meta }))
      m.set('nogc', new Y.Doc({ guid: 'g-nogc', gc: false }))
      m.set('auto', new Y.Doc({ guid: 'g-auto', autoLoad: true, meta: 'x' }))
    })                                              // ONE = encodeStateAsUpdate(a)
    const b = new Y.Doc(); b.clientID = 2002; Y.applyUpdate(b, ONE)
    b.transact(() => {
      b.getText('t').insertEmbed(1, { img: 'x.png' })
      b.getText('t').format(0, 2, { bold: true })
      b.getMap('m').set('bin', new Uint8Array([1, 2, 3]))
      b.getMap('m').set('any', [1, { a: 2.5, b: null }, 'three', 2n ** 40n])
      const p = new Y.XmlElement('p'); p.setAttribute('class', 'c')
      b.getXmlFragment('x').insert(0, [p])
      b.getArray('list').insert(0, [new Y.Doc({ guid: 'g-list', meta: { deep: [[[1]]] } })])
      b.getMap('m').delete('notes')
    })                                              // TWO = encodeStateAsUpdate(b)

so TWO has two clients, content of every kind yrs and Yjs share, a subdocument in an array and
one deleted (`notes`: garbage-collected to a Deleted item).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Array, Doc, Map, Text, merge_updates

from collab import cli
from collab.subdocs import SubdocOptions, keep_options, subdoc_items
from collab.validate import validate_update
from storage import PendingUpdate, SqlStore, fold

ONE = bytes.fromhex(
    "0104e90700040101740768c3a9f09f8e892901016d056e6f74657307672d6e6f7465737601046d6574617603"
    "057469746c6577054e6f746573016e7d01047461677375027701617701622901016d046e6f676306672d6e6f"
    "67637601026763792901016d046175746f06672d6175746f7602086175746f4c6f616478046d657461770178"
    "00"
)
TWO = bytes.fromhex(
    "0208d20f00c5e90700e907010f7b22696d67223a22782e706e67227d46e9070004626f6c640474727565c6d2"
    "0f00e9070104626f6c64046e756c6c2301016d0362696e030102032801016d03616e790175047d0176020161"
    "7c4020000001627e770574687265657a0000010000000000070101780301702800d20f0505636c6173730177"
    "01630901046c69737406672d6c6973747601046d657461760104646565707501750175017d0105e907000401"
    "0174016884e9070006c3a9f09f8e892101016d056e6f746573012901016d046e6f676306672d6e6f67637601"
    "026763792901016d046175746f06672d6175746f7602086175746f4c6f616478046d65746177017801e90701"
    "0401"
)
A, B = 1001, 2002
# The options each wrote, as lib0 encodes them (an Any: 118 object, 119 string, 120 true, ...).
NOTES = b"v\x01\x04metav\x03\x05titlew\x05Notes\x01n}\x01\x04tagsu\x02w\x01aw\x01b"
NOGC = b"v\x01\x02gcy"
AUTO = b"v\x02\x08autoLoadx\x04metaw\x01x"
LIST = b"v\x01\x04metav\x01\x04deepu\x01u\x01u\x01}\x01"


def items(update: bytes) -> dict[tuple[int, int], tuple[bytes, bytes]]:
    """{(client, clock): (guid, options)} of the subdocuments in an update, as encoded."""
    return {
        (client, clock): (update[guid_at:options_at], update[options_at:end])
        for client, clock, guid_at, options_at, end in subdoc_items(update)
    }


def through_yrs(*updates: bytes) -> bytes:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    encoded: bytes = doc.get_update()
    return encoded


def learned(*updates: bytes) -> SubdocOptions:
    options = SubdocOptions()
    for update in updates:
        options.learn_from(update)
    return options


def test_subdocuments_are_found_with_their_ids_and_options() -> None:
    # Clocks 0-3 are the text ("hé🎉" is four UTF-16 units), then the three subdocuments.
    assert items(ONE) == {
        (A, 4): (b"\x07g-notes", NOTES),
        (A, 5): (b"\x06g-nogc", NOGC),
        (A, 6): (b"\x06g-auto", AUTO),
    }
    # notes is deleted (a Deleted item now); B's embed, format (start and end), binary, any
    # (one array), XML element and its attribute come before g-list.
    assert items(TWO) == {
        (A, 5): (b"\x06g-nogc", NOGC),
        (A, 6): (b"\x06g-auto", AUTO),
        (B, 7): (b"\x06g-list", LIST),
    }


def test_the_validator_says_which_updates_hold_subdocuments() -> None:
    assert validate_update(ONE) is True
    assert validate_update(TWO) is True


def test_updates_without_subdocuments_cost_nothing_and_stay_the_same() -> None:
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    for i in range(20):
        text.insert(len(text), "ü" if i % 2 else "🎉")  # (pycrdt counts UTF-8 bytes)
    doc.get("m", type=Map)["k"] = {"a": [1, 2.5, None, True]}
    doc.get("a", type=Array).append(b"bytes")
    options = learned(ONE)  # a room with subdocuments
    for update in (*updates, doc.get_update()):
        assert validate_update(update) is False
        assert list(subdoc_items(update)) == []
        assert options.reinstate(update) == update
    assert SubdocOptions().reinstate(ONE) is ONE  # none known: not walked at all


def test_yrs_drops_meta_and_reinstate_puts_back_exactly_what_the_client_wrote() -> None:
    encoded = through_yrs(ONE)
    assert b"meta" not in encoded  # what this module is for
    assert learned(ONE).reinstate(encoded) == ONE  # one client: yrs writes the rest as Yjs did


def test_several_clients_and_a_deleted_subdocument() -> None:
    encoded = through_yrs(ONE, TWO)
    assert set(items(encoded)) == {(A, 5), (A, 6), (B, 7)}  # notes is gone
    assert all(b"meta" not in options for _, options in items(encoded).values())
    options = learned(ONE, TWO)
    assert set(options.known) == {(A, 4), (A, 5), (A, 6), (B, 7)}  # notes too: harmless
    restored = options.reinstate(encoded)
    assert items(restored) == items(TWO)
    # Nothing but the options changed, and the result is a valid update of the same document.
    assert without_options(restored) == without_options(encoded)
    assert state_of(restored) == state_of(ONE, TWO)


def test_a_diff_for_a_joiner_gets_the_options_of_what_it_lacks() -> None:
    doc: Doc[Any] = Doc()
    doc.apply_update(ONE)
    has_one = doc.get_state()
    doc.apply_update(TWO)
    diff = doc.get_update(has_one)
    restored = learned(ONE, TWO).reinstate(diff)
    assert items(restored) == {(B, 7): (b"\x06g-list", LIST)}
    assert without_options(restored) == without_options(diff)


def test_merged_updates_with_a_gap_skip_structs() -> None:
    """merge_updates of updates with a gap between them writes a Skip struct (info 10), whose
    length the walk must count."""
    a: Doc[Any] = Doc(client_id=7)
    updates: list[bytes] = []
    a.observe(lambda event: updates.append(event.update))
    a.get("t", type=Text).insert(0, "first")
    a.get("t", type=Text).insert(5, "gap")
    a.get("m", type=Map)["sub"] = Doc(guid="g-sub")
    merged = merge_updates(updates[0], updates[2])
    assert b"\x0a" in merged  # the Skip
    found = items(merged)
    assert list(found) == [(7, 8)]  # "first" 0-4, the skipped "gap" 5-7
    options = SubdocOptions()
    options.learn([(7, 8, found[(7, 8)][0], b"v\x01\x04metaw\x02hi")])
    restored = options.reinstate(merged)
    assert items(restored) == {(7, 8): (b"\x05g-sub", b"v\x01\x04metaw\x02hi")}
    assert without_options(restored) == without_options(merged)


def test_only_the_item_with_the_same_id_and_guid_is_changed() -> None:
    encoded = through_yrs(ONE)
    options = SubdocOptions()
    options.learn(
        [
            (A, 5, b"\x07g-other", b"v\x01\x04metaw\x01y"),  # same ID, another guid
            (A, 7, b"\x06g-auto", b"v\x01\x04metaw\x01y"),  # same guid, another ID
        ]
    )
    assert options.reinstate(encoded) == encoded


def test_the_first_options_seen_for_an_id_stay_as_yrs_keeps_the_first_item() -> None:
    options = learned(ONE)
    options.learn([(A, 4, b"\x07g-notes", b"v\x00")])  # a later claim to the same ID
    assert options.known[(A, 4)] == (b"\x07g-notes", NOTES)


def test_legacy_json_content_stops_the_walk_and_nothing_is_changed() -> None:
    # Client 9: a JSON item (ref 2, as yrs reads it: count + 1 strings) then a subdocument.
    json_item = b"\x02\x01\x01j\x00\x011"
    subdoc = b"\x09\x01\x01m" + b"\x01g" + b"v\x00"
    update = b"\x01\x02\x09\x00" + json_item + subdoc + b"\x00"
    assert through_yrs(update)  # yrs reads it
    assert list(subdoc_items(update)) == []
    options = SubdocOptions()
    options.learn([(9, 1, b"\x01g", b"v\x01\x04metaw\x01y")])
    assert options.reinstate(update) == update


def test_an_update_it_cannot_read_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    options = learned(ONE)
    with caplog.at_level(logging.WARNING, logger="collab.subdocs"):
        assert options.reinstate(ONE[:40]) == ONE[:40]
        options.learn_from(b"\x01\x01\x05\x00\x09")
    assert len(caplog.records) == 2
    assert options.known == learned(ONE).known


def test_fold_keeps_the_options_when_given_keep_options() -> None:
    assert b"meta" not in fold([], [ONE, TWO])
    assert items(fold([], [ONE, TWO], keep_options)) == items(TWO)
    assert items(fold([through_yrs(ONE)], [TWO], keep_options))[(B, 7)] == (b"\x06g-list", LIST)


def test_fold_calls_keep_only_for_documents_with_subdocuments() -> None:
    calls: list[int] = []

    def keep(inputs: Any, folded: bytes) -> bytes:
        calls.append(len(inputs))
        return folded

    doc: Doc[Any] = Doc()
    doc.get("t", type=Text).insert(0, "no subdocuments")
    fold([], [doc.get_update()], keep)
    assert calls == []
    fold([doc.get_update()], [ONE], keep)
    assert calls == [2]


@pytest.mark.anyio
async def test_compaction_by_replay_and_export_keep_the_options(tmp_path: Path) -> None:
    store = SqlStore.from_url(f"sqlite+aiosqlite:///{tmp_path}/store.db")
    await store.open()
    try:
        await store.append([PendingUpdate("d", ONE, 1), PendingUpdate("d", TWO, 2)])
        result = await store.compact("d", keep=keep_options)  # no live document: a replay
        assert result is not None and not result.live
        stored = await store.load("d")
        assert stored.snapshot is not None and not stored.updates
        assert items(stored.snapshot) == items(TWO)
        await store.append([PendingUpdate("d", through_yrs(ONE, TWO), 3)])  # meta-less, after
        assert items(await cli.document_update(store, "d")) == items(TWO)  # collab export
    finally:
        await store.close()


def without_options(update: bytes) -> list[bytes]:
    """The update cut around the subdocuments' options."""
    parts, last = [], 0
    for _, _, _, options_at, end in subdoc_items(update):
        parts.append(update[last:options_at])
        last = end
    parts.append(update[last:])
    return parts


def state_of(*updates: bytes) -> bytes:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    state: bytes = doc.get_state()
    return state
