"""The update validator against pycrdt itself.

Two properties carry the weight: every update pycrdt produces is accepted, and every input pycrdt
accepts (random bytes, damaged real updates) is accepted too, since refusing one disconnects a
client; the only exceptions are the deliberate refusals documented in collab/validate.py, each
with its own test. Whatever the validator accepts is also applied, and must neither make pycrdt
allocate much nor leave the document unable to encode itself. Around them: the known amplifiers,
hand-made hostile and lenient inputs, and bigger inputs for what small fuzz inputs cannot show.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    XmlElement,
    XmlFragment,
    XmlText,
    merge_updates,
)

from collab.errors import ProtocolError
from collab.protocol import write_var_uint
from collab.validate import (
    CLOCK_OVERFLOW,
    DUPLICATE_CLIENT,
    EMPTY_CLIENT,
    LEGACY_JSON,
    MAX_ANY_DEPTH,
    MAX_CLOCK,
    SQUASH_TOO_COSTLY,
    TOO_DEEP,
    YJS_DELETE_ORDER,
    YJS_SELF_REFERENCE,
    YJS_TOO_LONG,
    YJS_UNREADABLE,
    YJS_UNSAFE_INTEGER,
    YJS_ZERO_LENGTH,
    ZERO_LENGTH_GC,
    validate_state_vector,
    validate_update,
)

AMPLIFIERS = [
    bytes.fromhex("b8f2b476b8c7d77b5f90a1bb5bbe2627"),
    bytes.fromhex("9bba87ba61c8eb06ddaca3c34a2955cb"),
]
MiB_IN_KIB = 1024  # ru_maxrss and /proc VmHWM are in KiB
MEMORY_BUDGET_KIB = 64 * MiB_IN_KIB
# Refused on purpose although pycrdt applies them (see collab/validate.py): the one exception to
# "whatever pycrdt accepts, the validator accepts".
DELIBERATE_REFUSALS = {
    YJS_UNREADABLE,
    YJS_UNSAFE_INTEGER,
    YJS_TOO_LONG,
    YJS_ZERO_LENGTH,
    YJS_SELF_REFERENCE,
    YJS_DELETE_ORDER,
    LEGACY_JSON,
    TOO_DEEP,
    ZERO_LENGTH_GC,
    CLOCK_OVERFLOW,
    DUPLICATE_CLIENT,
    EMPTY_CLIENT,
    SQUASH_TOO_COSTLY,
}


# --- encoding helpers for hand-made updates -------------------------------------------------------


vu = write_var_uint  # lib0 varuint, as Yjs writes it


def vs(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return vu(len(raw)) + raw


def one_client(*structs: bytes, client: int = 1, clock: int = 0, ds: bytes = b"\x00") -> bytes:
    return vu(1) + vu(len(structs)) + vu(client) + vu(clock) + b"".join(structs) + ds


def root_item(content_ref: int, content: bytes, root: str = "t") -> bytes:
    """An item without origins, whose parent is the root type `root`."""
    return bytes([content_ref]) + vu(1) + vs(root) + content


def any_item(*values: bytes) -> bytes:
    return root_item(8, vu(len(values)) + b"".join(values))


# Updates pycrdt decodes that leave a document unable to encode itself (get_update panics).
MAP_ENTRY = one_client(b"\x27" + vu(1) + vs("map") + vs("a") + b"\x01", client=77)
LONE_ZERO_LENGTH_GC = one_client(b"\x00\x00", client=77, clock=1)  # after MAP_ENTRY
POISON_ZERO_LENGTH_GC = one_client(b"\x27" + vu(1) + vs("map") + vs("a") + b"\x01", b"\x00\x00")
POISON_CLOCK_WRAP = one_client(root_item(4, vs("x")), root_item(4, vs("a")), clock=2**32 - 1)


def _is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"  # pyo3's, derived from BaseException


def pycrdt_accepts(update: bytes, doc: Doc | None = None) -> bool:
    try:
        (Doc() if doc is None else doc).apply_update(update)
    except BaseException as exc:
        if isinstance(exc, Exception) or _is_panic(exc):
            return False
        raise
    return True


def healthy(doc: Doc) -> bool:
    """Whether the document can still encode itself (what every sync step 1 reply needs)."""
    try:
        Doc().apply_update(doc.get_update())
        doc.get_update(Doc().get_state())
    except BaseException as exc:
        if isinstance(exc, Exception) or _is_panic(exc):
            return False
        raise
    return True


def refusal(update: bytes) -> str | None:
    """The validator's reason for refusing `update`, None if it accepts it."""
    try:
        validate_update(update)
    except ProtocolError as exc:
        return exc.reason
    return None


def validator_accepts(update: bytes) -> bool:
    return refusal(update) is None


# --- memory: peak RSS of this process around one call ---------------------------------------------


def _libc_malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: measurements only get less sensitive
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def _reset_peak() -> bool:
    """Hand freed heap back (glibc), so that what a call allocates shows in the RSS, then reset
    the peak RSS (VmHWM, ru_maxrss): Linux ≥ 4.0 does it on writing 5 to clear_refs."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _current_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")  # pragma: no cover


def peak_growth_kib(call: Callable[..., object], *args: Any) -> int:
    """How far the peak RSS rose above the current RSS while `call(*args)` ran."""
    if _reset_peak():
        before = _current_rss_kib()
    else:  # no reset: fall back to the process's peak so far (still catches a first big jump)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call(*args)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


def apply_quietly(update: bytes, doc: Doc | None = None) -> None:
    pycrdt_accepts(update, doc)


@pytest.fixture(scope="module", autouse=True)
def _warm_up_rust_panics() -> None:
    # With RUST_BACKTRACE set, the first panic in a process symbolizes a backtrace (~50 MB);
    # let that happen here rather than inside a measurement.
    doc = Doc()
    with pytest.raises(BaseException, match="divide by zero"):
        doc.apply_update(POISON_ZERO_LENGTH_GC)


# --- updates from random pycrdt programs ----------------------------------------------------------

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "a", "é", "漢字", "👍🏽", "🇫🇷x", "a\u0000b", "\u200d", "e\u0301"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.integers(-100, 100)
    | st.floats(allow_nan=False)
    | TEXT
    | st.binary(max_size=16)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Formatting attributes and embeds travel as JSON text: keep them JSON-representable.
JSON_SCALARS = st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT
ATTRS = st.none() | st.dictionaries(
    st.sampled_from(["bold", "italic", "href", "color", "ü"]), JSON_SCALARS, min_size=1, max_size=2
)
EMBEDS = st.dictionaries(TEXT, JSON_SCALARS, max_size=3) | st.lists(JSON_SCALARS, max_size=3)
IDX = st.integers(0, 1000)
KEYS = st.sampled_from(["a", "b", "ключ", "🔑", ""])

OPS = st.one_of(
    st.tuples(st.just("text_insert"), IDX, TEXT, ATTRS),
    st.tuples(st.just("text_delete"), IDX, st.integers(1, 5)),
    st.tuples(st.just("text_format"), IDX, st.integers(1, 5), ATTRS),
    st.tuples(st.just("text_embed"), IDX, EMBEDS),
    st.tuples(st.just("big_text"), IDX, st.integers(100, 20_000)),
    st.tuples(st.just("map_set"), KEYS, VALUES),
    st.tuples(st.just("map_nested"), KEYS, st.sampled_from(["map", "array", "text"]), VALUES),
    st.tuples(st.just("map_pop"), KEYS),
    st.tuples(st.just("map_subdoc"), KEYS),
    st.tuples(st.just("array_insert"), IDX, VALUES),
    st.tuples(st.just("array_extend"), st.lists(VALUES, max_size=5)),
    st.tuples(st.just("array_delete"), IDX),
    st.tuples(st.just("nested_edit"), KEYS, TEXT),
    st.tuples(st.just("xml_element"), TEXT, st.dictionaries(KEYS, TEXT, max_size=2), TEXT),
    st.tuples(st.just("xml_text"), IDX, TEXT, ATTRS),
    st.tuples(st.just("xml_attr"), KEYS, TEXT),
    st.tuples(st.just("xml_delete"), IDX),
)
PROGRAMS = st.lists(OPS, max_size=12)
CLIENT_IDS = st.sampled_from([0, 1, 127, 128, 2**32 - 1, 2**32, 2**53 - 1]) | st.integers(
    0, 2**53 - 1
)


def run(doc: Doc, program: list[tuple[Any, ...]]) -> None:
    """Interpret a program against the roots text/map/array/xml; indices wrap around."""
    text = doc.get("text", type=Text)
    mapping = doc.get("map", type=Map)
    array = doc.get("array", type=Array)
    xml = doc.get("xml", type=XmlFragment)
    for op, *args in program:
        _run_op(op, args, text, mapping, array, xml)


def _offsets(text: Text | XmlText) -> list[int]:
    """The indices pycrdt accepts in a text: UTF-8 byte offsets of characters, 1 per embed."""
    offsets = [0]
    for chunk, _ in text.diff():
        if isinstance(chunk, str):
            for char in chunk:
                offsets.append(offsets[-1] + len(char.encode()))
        else:
            offsets.append(offsets[-1] + 1)
    return offsets


def _run_op(
    op: str, args: list[Any], text: Text, mapping: Map[Any], array: Array[Any], xml: XmlFragment
) -> None:
    at = _offsets(text)
    if op == "text_insert":
        text.insert(at[args[0] % len(at)], args[1] or "x", args[2])
    elif op == "text_delete" and len(at) > 1:
        start = args[0] % (len(at) - 1)
        del text[at[start] : at[min(len(at) - 1, start + args[1])]]
    elif op == "text_format" and len(at) > 1 and args[2]:
        start = args[0] % (len(at) - 1)
        text.format(at[start], at[min(len(at) - 1, start + args[1])], args[2])
    elif op == "text_embed":
        text.insert_embed(at[args[0] % len(at)], args[1])
    elif op == "big_text":
        text.insert(at[args[0] % len(at)], "ab😀"[args[1] % 3] * args[1])
    elif op == "map_set":
        mapping[args[0]] = args[1]
    elif op == "map_nested":
        key, kind, value = args
        if kind == "map":
            mapping[key] = Map({"v": value, "inner": Map({"x": value})})
        elif kind == "array":
            mapping[key] = Array([value, Array([value])])
        else:
            mapping[key] = Text(str(value))
    elif op == "map_pop" and args[0] in mapping:
        mapping.pop(args[0])
    elif op == "map_subdoc":
        mapping[args[0]] = Doc()
    elif op == "array_insert":
        array.insert(args[0] % (len(array) + 1), args[1])
    elif op == "array_extend":
        array.extend(args[0])
    elif op == "array_delete" and len(array):
        del array[args[0] % len(array)]
    elif op == "nested_edit":
        nested = mapping.get(args[0])
        if isinstance(nested, Text):
            nested.insert(0, args[1] or "y")
        elif isinstance(nested, Map):
            nested["edited"] = args[1]
        elif isinstance(nested, Array):
            nested.append(args[1])
    elif op == "xml_element":
        tag, attributes, inner = args
        xml.children.append(XmlElement(tag or "p", attributes, [XmlText(inner)]))
    elif op == "xml_text":
        target = next((c for c in xml.children if isinstance(c, XmlText)), None)
        if target is None:
            target = xml.children.append(XmlText())
        offsets = _offsets(target)
        target.insert(offsets[args[0] % len(offsets)], args[1] or "z", args[2])
    elif op == "xml_attr":
        element = next((c for c in xml.children if isinstance(c, XmlElement)), None)
        if element is not None:
            element.attributes[args[0] or "k"] = args[1]
    elif op == "xml_delete" and len(xml.children):
        del xml.children[args[0] % len(xml.children)]


def produced_updates(
    program_a: list[tuple[Any, ...]],
    program_b: list[tuple[Any, ...]],
    client_a: int,
    client_b: int,
) -> list[bytes]:
    """Every kind of update two peers exchange: per-transaction, full, diffs, merges, deletes."""
    a = Doc(client_id=client_a)
    b = Doc(client_id=client_b if client_b != client_a else client_a ^ 1)
    incremental: list[bytes] = []
    a.observe(lambda event: incremental.append(event.update))
    b.observe(lambda event: incremental.append(event.update))
    half = len(program_a) // 2
    run(a, program_a[:half])
    b.apply_update(a.get_update())
    b_state = b.get_state()
    run(b, program_b)
    run(a, program_a[half:])
    # a deletes what b already has: the diff for b is then mostly (or only) a delete set
    with a.transaction():
        text = a.get("text", type=Text)
        at = _offsets(text)
        if len(at) > 2:
            del text[0 : at[len(at) // 2]]
        array = a.get("array", type=Array)
        if len(array):
            del array[0]
    updates = [
        *incremental,
        a.get_update(),
        b.get_update(),
        a.get_update(b_state),
        a.get_update(b.get_state()),
        b.get_update(a.get_state()),
    ]
    if incremental:
        updates.append(merge_updates(*incremental))
        updates.append(merge_updates(incremental[-1], a.get_update(b.get_state())))
    return updates


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program_a=PROGRAMS, program_b=PROGRAMS, client_a=CLIENT_IDS, client_b=CLIENT_IDS)
def test_every_update_pycrdt_produces_is_accepted(program_a, program_b, client_a, client_b):
    for update in produced_updates(program_a, program_b, client_a, client_b):
        validate_update(update)
    a = Doc(client_id=client_a)
    run(a, program_a)
    validate_state_vector(a.get_state())


# --- everything pycrdt accepts, the validator accepts ---------------------------------------------

POSITIONS = st.integers(0, 2**20)
MUTATIONS = st.one_of(
    st.tuples(st.just("xor"), POSITIONS, st.integers(1, 255)),
    st.tuples(st.just("set"), POSITIONS, st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFF, 10, 0x14])),
    st.tuples(st.just("truncate"), POSITIONS),
    st.tuples(st.just("delete"), POSITIONS, st.integers(1, 8)),
    st.tuples(st.just("insert"), POSITIONS, st.binary(min_size=1, max_size=8)),
    # a varint byte made longer without changing its value: 0x05 → 0x85 0x80 0x00
    st.tuples(st.just("extend"), POSITIONS, st.integers(1, 10)),
    # a byte replaced by a large varint: counts and lengths near and past 2^31, 2^32, 2^53, 2^64
    st.tuples(
        st.just("bigvar"),
        POSITIONS,
        st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**53, 2**64 + 1]),
    ),
)


def mutate(update: bytes, mutations: list[tuple[Any, ...]]) -> bytes:
    data = bytearray(update)
    for kind, pos, *args in mutations:
        pos %= len(data) + 1
        if kind == "insert":
            data[pos:pos] = args[0]
        elif kind == "truncate":
            del data[pos:]
        elif pos == len(data):
            continue
        elif kind == "xor":
            data[pos] ^= args[0]
        elif kind == "set":
            data[pos] = args[0]
        elif kind == "delete":
            del data[pos : pos + args[0]]
        elif kind == "extend" and data[pos] < 0x80:
            data[pos : pos + 1] = bytes([data[pos] | 0x80]) + b"\x80" * (args[0] - 1) + b"\x00"
        elif kind == "bigvar":
            data[pos : pos + 1] = vu(args[0])
    return bytes(data)


def check_agreement(
    candidate: bytes, base: bytes = b"\x00\x00", stats: dict[str, int] | None = None
) -> None:
    """On a document holding `base`: pycrdt accepts `candidate` ⇒ the validator accepts it, and
    whatever the validator accepts neither makes pycrdt allocate much nor breaks the document."""
    doc = Doc()
    doc.apply_update(base)
    reason = refusal(candidate)
    if reason is None:
        growth = peak_growth_kib(apply_quietly, candidate, doc)
        assert growth < MEMORY_BUDGET_KIB, (candidate.hex(), growth)
        assert healthy(doc), (base.hex(), candidate.hex())
    elif reason not in DELIBERATE_REFUSALS:
        assert not pycrdt_accepts(candidate, doc), (reason, base.hex(), candidate.hex())
    if stats is not None:
        stats["accepted" if reason is None else "rejected"] += 1


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=PROGRAMS,
    client=CLIENT_IDS,
    pick=st.integers(0, 100),
    mutations=st.lists(MUTATIONS, min_size=1, max_size=4),
)
def test_whatever_pycrdt_accepts_of_damaged_updates_is_accepted(program, client, pick, mutations):
    updates = produced_updates(program, [], client, client ^ 1)
    base = updates[pick % len(updates)]
    check_agreement(mutate(base, mutations), base)


@settings(max_examples=1000, deadline=None)
@given(
    prefix=st.sampled_from([b"", b"\x00", b"\x01\x01", b"\x01\x01\x01\x00", b"\x00\x01\x01"]),
    body=st.binary(max_size=48),
)
def test_whatever_pycrdt_accepts_of_random_bytes_is_accepted(prefix, body):
    check_agreement(prefix + body)


def test_the_properties_see_both_verdicts():
    """Guard against a fuzzer that only ever produces garbage: mutations must often survive."""
    stats = {"accepted": 0, "rejected": 0}
    base = produced_updates(
        [("text_insert", 0, "héllo 👋", {"bold": True}), ("map_set", "a", {"x": [1, b"\x00"]})],
        [("array_insert", 0, "v")],
        7,
        8,
    )
    for i in range(400):
        update = base[i % len(base)]
        position = (i * 7919) % (len(update) + 1)
        check_agreement(mutate(update, [("xor", position, 1 + i % 255)]), update, stats)
    assert stats["accepted"] > 40 and stats["rejected"] > 40, stats


# --- known amplifiers and hand-made hostile inputs ------------------------------------------------


@pytest.mark.parametrize("update", AMPLIFIERS, ids=lambda u: u.hex())
def test_amplifiers_are_rejected_quickly(update):
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        with pytest.raises(ProtocolError) as info:
            validate_update(update)
        best = min(best, time.perf_counter() - start)
    assert best < 0.005
    assert info.value.code == 1002
    assert update.hex() not in info.value.reason


BEYOND = "beyond end"
BEYOND_2_32 = "beyond 2\\^32"  # YJS_TOO_LONG: wrapped by yrs, refused first for Yjs peers
HOSTILE = {  # name: (update, what the reason says)
    "client count beyond end": (vu(2**32 - 1) + b"\x00", "client count " + BEYOND),
    "client count slightly beyond end": (vu(3) + b"\x01\x01\x00\x00", "client count " + BEYOND),
    "struct count beyond end": (vu(1) + vu(2**31) + b"\x01\x00\x00", "struct count " + BEYOND),
    "struct count wrapping to huge": (vu(1) + vu(2**64 - 1) + b"\x01\x00\x00", BEYOND_2_32),
    "string length beyond end": (one_client(root_item(4, vu(2**32 - 1) + b"abc")), BEYOND),
    "string length just beyond end": (one_client(root_item(4, vu(5) + b"abc"), ds=b""), BEYOND),
    "binary length beyond end": (one_client(root_item(3, vu(2**31) + b"\x00")), BEYOND),
    "key length beyond end": (one_client(b"\x04" + vu(1) + vu(10**6) + b"t"), BEYOND),
    "any count beyond end": (one_client(root_item(8, vu(2**32 - 1) + b"\x7e")), BEYOND),
    "any array count beyond end": (one_client(any_item(b"\x75" + vu(2**63))), BEYOND_2_32),
    "any object count beyond end": (
        one_client(any_item(b"\x76" + vu(2**40) + vs("k") + b"\x7e")),
        BEYOND_2_32,
    ),
    "json count beyond end": (one_client(root_item(2, vu(2**31 - 2) + vs("1"))), "legacy JSON"),
    "json count negative as i32": (
        one_client(root_item(2, vu(2**31) + vs("1") * 2)),
        "legacy JSON",
    ),
    "delete set client count beyond end": (b"\x00" + vu(2**32 - 1), BEYOND),
    "delete set range count beyond end": (b"\x00\x01\x01" + vu(2**32 - 1) + b"\x00\x01", BEYOND),
    "12-byte varint": (b"\x00" + b"\x80" * 11 + b"\x00", "varint too long"),
    "unknown content ref 11 (Move)": (one_client(root_item(11, b"\x01\x01\x00\x00")), "content"),
    "unknown content ref 0 with flags": (one_client(root_item(0x10, b"\x00")), "content"),
    "skip ref with origin": (one_client(b"\x8a\x01\x00\x03"), "content"),
    "unknown type ref 7 (weak link)": (one_client(root_item(7, b"\x07\x00\x01\x00")), "type"),
    "type ref as two-byte varint": (one_client(root_item(7, b"\x80\x00")), "type"),
    "unknown any tag": (one_client(any_item(b"\x73")), "value type"),
    "any tag above 127": (one_client(any_item(b"\x80")), "value type"),
    "any tag 255": (one_client(any_item(b"\xff")), "value type"),
    "any float64 cut short": (one_client(any_item(b"\x7b\x00\x00\x00"), ds=b""), "truncated"),
    "invalid utf-8 string": (one_client(root_item(4, vs(b"\xff\xfe"))), "UTF-8"),
    "utf-8 surrogate": (one_client(root_item(4, vs(b"\xed\xa0\x80"))), "UTF-8"),
    "invalid utf-8 root name": (one_client(b"\x04" + vu(1) + vs(b"\xc3") + vs("x")), "UTF-8"),
    "invalid utf-8 object key": (
        one_client(any_item(b"\x76\x01" + vs(b"\x80") + b"\x7e")),
        "UTF-8",
    ),
    "empty": (b"", "truncated"),
    "no delete set": (b"\x00", BEYOND),
}
# These two would make this very process allocate hundreds of MB in pycrdt.
TOO_COSTLY_FOR_PYCRDT = {"client count beyond end", "struct count wrapping to huge"}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_inputs_are_rejected_and_pycrdt_agrees(name):
    update, reason = HOSTILE[name]
    with pytest.raises(ProtocolError, match=reason):
        validate_update(update)
    if name not in TOO_COSTLY_FOR_PYCRDT:
        assert not pycrdt_accepts(update)


def nested_arrays(depth: int) -> bytes:
    return b"\x75\x01" * depth + b"\x7e"


def test_any_nesting_is_bounded():
    at_limit = one_client(any_item(nested_arrays(MAX_ANY_DEPTH)))
    validate_update(at_limit)
    assert pycrdt_accepts(at_limit)
    objects = one_client(any_item((b"\x76\x01" + vs("k")) * MAX_ANY_DEPTH + b"\x7e"))
    validate_update(objects)
    for too_deep in (
        one_client(any_item(nested_arrays(MAX_ANY_DEPTH + 1))),
        one_client(any_item((b"\x76\x01" + vs("k")) * (MAX_ANY_DEPTH + 1) + b"\x7e")),
        # 50 000 levels (100 KB) is what crashes the process with SIGSEGV inside pycrdt
        one_client(any_item(nested_arrays(50_000))),
        one_client(root_item(9, vs("guid") + nested_arrays(MAX_ANY_DEPTH + 1))),
    ):
        start = time.perf_counter()
        with pytest.raises(ProtocolError, match="nested"):
            validate_update(too_deep)
        assert time.perf_counter() - start < 0.5
    # siblings do not add up: many shallow values are fine
    validate_update(one_client(any_item(*[nested_arrays(10)] * 1000)))


def test_updates_that_break_the_document_are_refused():
    """pycrdt applies these without complaint, then can no longer encode the document."""
    doc = Doc()
    doc.apply_update(MAP_ENTRY)
    assert pycrdt_accepts(LONE_ZERO_LENGTH_GC, doc)
    assert not healthy(doc)
    assert refusal(LONE_ZERO_LENGTH_GC) == ZERO_LENGTH_GC
    assert refusal(POISON_ZERO_LENGTH_GC) == ZERO_LENGTH_GC

    doc = Doc()
    assert pycrdt_accepts(POISON_CLOCK_WRAP, doc)
    assert not healthy(doc)
    assert refusal(POISON_CLOCK_WRAP) == CLOCK_OVERFLOW
    for beyond in (
        one_client(root_item(4, vs("x")), clock=2**32 - 1),
        one_client(root_item(4, vs("x")), clock=MAX_CLOCK),
        one_client(root_item(1, vu(MAX_CLOCK)), b"\x00\x01", clock=1),
        one_client(b"\x00" + vu(2**30), b"\x0a" + vu(2**30)),
        one_client(any_item(b"\x7e", b"\x7e"), clock=MAX_CLOCK - 1),
        one_client(root_item(4, vs("👍")), clock=MAX_CLOCK - 1),  # 2 clocks (UTF-16 units)
        b"\x00\x01\x01\x01" + vu(MAX_CLOCK) + b"\x01",  # a deleted range past the last clock
    ):
        assert refusal(beyond) == CLOCK_OVERFLOW, beyond.hex()
    # yrs panics already on clocks past 2^31: a pending item there, a deleted range below it
    panics = one_client(root_item(4, vs("x")), clock=2**31 + 1, ds=b"\x01\x01\x01\x00\x01")
    assert not pycrdt_accepts(panics)
    assert pycrdt_accepts(
        one_client(root_item(4, vs("x")), clock=2**31, ds=b"\x01\x01\x01\x00\x01")
    )
    assert refusal(panics) == CLOCK_OVERFLOW

    # up to the last clock is fine, and pycrdt agrees
    for last in (
        one_client(root_item(4, vs("x")), clock=MAX_CLOCK - 1),
        one_client(root_item(4, vs("é")), clock=MAX_CLOCK - 1),  # 2 bytes of UTF-8, 1 clock
        one_client(root_item(7, b"\x00"), clock=MAX_CLOCK - 1),
        one_client(b"\x00" + vu(MAX_CLOCK)),
        b"\x00\x01\x01\x01" + vu(MAX_CLOCK - 1) + b"\x01",
    ):
        doc = Doc()
        validate_update(last)
        assert pycrdt_accepts(last, doc)
        assert healthy(doc)
    # an empty Skip is nothing, for Yjs too: accepted (empty items are refused for Yjs peers)
    validate_update(one_client(b"\x0a\x00", root_item(4, vs("x"))))


def test_a_client_without_structs_is_refused():
    """yrs panics on a client listed without structs once it holds items of that client."""
    doc = Doc()
    doc.apply_update(one_client(*[root_item(4, vs("x"))] * 6))
    empty = vu(1) + vu(0) + vu(1) + vu(5) + b"\x00"
    assert not pycrdt_accepts(empty, doc)  # a PanicException
    assert pycrdt_accepts(empty)  # on a fresh document
    assert refusal(empty) == EMPTY_CLIENT
    assert refusal(vu(1) + vu(0) + vu(1) + vu(0) + b"\x00") == EMPTY_CLIENT


def run_of_items(count: int, kind: str = "any") -> bytes:
    """One client's `count` items, each placed right after the previous: yrs merges them."""
    first, following = {
        "any": (root_item(8, b"\x01\x7e"), lambda clock: b"\x88\x01" + vu(clock - 1) + b"\x01\x7e"),
        "string": (root_item(4, vs("a")), lambda clock: b"\x84\x01" + vu(clock - 1) + vs("a")),
        "é": (root_item(4, vs("é")), lambda clock: b"\x84\x01" + vu(clock - 1) + vs("é")),
    }[kind]
    return one_client(first, *[following(clock) for clock in range(1, count)])


def test_runs_of_items_yrs_merges_are_bounded():
    """yrs merges such a run at a cost quadratic in its length: 2000 one-value Any items (12 KB)
    take it ~90 MB, 16 000 (96 KB) 6 GB and 18 s. Encoders merge runs before they send them."""
    for update in (
        run_of_items(700),
        run_of_items(4000, "string"),
        run_of_items(2800, "é"),  # 2 bytes of UTF-8 each
    ):
        validate_update(update)
        doc = Doc()
        growth = peak_growth_kib(apply_quietly, update, doc)
        assert growth < 16 * MiB_IN_KIB, growth
    for update in (
        run_of_items(800),
        run_of_items(6000, "string"),
        run_of_items(4200, "é"),
        run_of_items(16_000),
    ):
        assert refusal(update) == SQUASH_TOO_COSTLY
    # the same run split into one section per item (one client listed many times) is refused too
    first = vu(1) + vu(1) + vu(0) + root_item(8, b"\x01\x7e")
    second = vu(1) + vu(1) + vu(1) + b"\x88\x01\x00\x01\x7e"
    assert refusal(vu(2) + first + second + b"\x00") == DUPLICATE_CLIENT
    same_client_longer = b"\x01\x81\x80\x00\x00" + root_item(4, vs("b")) + b"\x00"  # 1 in 3 bytes
    assert (
        refusal(vu(2) + one_client(root_item(4, vs("a")))[1:-1] + same_client_longer)
        == DUPLICATE_CLIENT
    )
    # items that only look alike are not a run: long documents typed at random places pass
    doc = Doc(client_id=7)
    text = doc.get("text", type=Text)
    array = doc.get("array", type=Array)
    for i in range(3000):
        text.insert((i * 7919) % (len(text) + 1), "abc"[i % 3])
        array.insert((i * 104729) % (len(array) + 1), i)
    validate_update(doc.get_update())
    # and runs of items that cannot merge (different right origins) are not counted
    right_origins = [root_item(8, b"\x01\x7e")] + [
        b"\xc8\x01" + vu(clock - 1) + b"\x02" + vu(clock) + b"\x01\x7e" for clock in range(1, 3000)
    ]
    validate_update(one_client(*right_origins))


def test_big_accepted_updates_cost_memory_in_proportion():
    """Linear shapes of 128 KB: yrs spends up to ~50 bytes per byte of update on them."""
    size = 128 * 1024
    shapes = {
        "GC structs": one_client(*[b"\x00\x01"] * (size // 2)),
        "items at the root": one_client(*[root_item(1, b"\x01")] * (size // 5)),
        "items after items": vu(1)
        + vu(size // 4 + 1)
        + b"\x01\x00"
        + b"\x00\x80\x01"  # a GC of 128 clocks, then items placed after its clocks
        + b"".join(b"\x81\x01" + vu(i % 128) + b"\x01" for i in range(size // 4))
        + b"\x00",
        "empty objects": one_client(root_item(8, vu(size // 2) + b"\x76\x00" * (size // 2))),
        "clients": vu(size // 6)
        + b"".join(vu(1) + vu(i + 1) + b"\x00\x00\x01" for i in range(size // 6))
        + b"\x00",
        "delete set clients": b"\x00"
        + vu(size // 4)
        + b"".join(vu(i) + b"\x01\x01\x01" for i in range(size // 4)),
        "map keys": one_client(
            *[b"\x28\x01\x01m" + vs(str(i)) + b"\x01\x7e" for i in range(size // 10)]
        ),
    }
    for name, update in shapes.items():
        validate_update(update)
        growth = peak_growth_kib(apply_quietly, update, Doc())
        assert growth * 1024 < 80 * len(update), (name, growth)


def test_hand_made_updates_pycrdt_applies_are_accepted():
    """Mostly what yrs applies although Yjs would not write it: refusing any breaks the property."""
    lenient = {
        "trailing bytes after the delete set": b"\x00\x00\xff\xff\xff",
        "empty update": b"\x00\x00",
        "empty Skip": one_client(b"\x0a\x00", root_item(1, b"\x01")),
        "11-byte varint": b"\x00" + b"\x80" * 10 + b"\x00",
        "client id 2^53 - 1": one_client(root_item(4, vs("x")), client=2**53 - 1),
        "struct count 1 in 11 bytes": vu(1)
        + b"\x81"
        + b"\x80" * 9
        + b"\x00"
        + vu(1)
        + vu(0)
        + root_item(4, vs("x"))
        + b"\x00",
        "signed varint of 11 bytes": one_client(any_item(b"\x7d\x81" + b"\x80" * 9 + b"\x00")),
        "xml text type": one_client(root_item(7, b"\x06")),
        "parent info 2 means an id": one_client(b"\x04" + vu(2) + b"\x05\x00" + vs("x")),
        "invalid utf-8 in binary": one_client(root_item(3, vs(b"\xff"))),
        "map entry": one_client(b"\x28" + vu(1) + vs("m") + vs("key") + vu(1) + b"\x7e"),
        "Yjs-style delete set": b"\x00\x02"
        + vu(2**31 + 9)
        + b"\x02\x00\x03\x07\x01\x05\x01\x00\x80\x01",
    }
    for name, update in lenient.items():
        assert pycrdt_accepts(update), name
        validate_update(update)


def test_every_truncation_of_a_real_update_agrees_with_pycrdt():
    doc = Doc(client_id=2**40 + 3)
    run(
        doc,
        [
            ("text_insert", 0, "héllo wörld 👋🏽", {"bold": True}),
            ("text_embed", 3, {"image": "a.png"}),
            ("map_set", "a", {"x": [1, 2.5, None, True, b"\x00\xff"], "y": "z"}),
            ("map_nested", "b", "map", [1, "two"]),
            ("map_subdoc", "c"),
            ("array_insert", 0, 2**60),
            ("xml_element", "p", {"class": "c"}, "inner"),
            ("xml_text", 0, "t", {"italic": True}),
            ("text_delete", 2, 3),
        ],
    )
    update = doc.get_update()
    validate_update(update)
    for cut in range(len(update)):
        truncated = update[:cut]
        if validator_accepts(truncated):
            continue  # e.g. a cut inside trailing bytes: pycrdt decides, memory is checked above
        assert not pycrdt_accepts(truncated), cut
    assert not validator_accepts(update[: len(update) // 2])


def test_state_vectors():
    doc = Doc(client_id=123456789)
    doc.get("t", type=Text).insert(0, "abc")
    other = Doc(client_id=2**53 - 1)
    other.apply_update(doc.get_update())
    other.get("t", type=Text).insert(0, "x")
    for state in (Doc().get_state(), doc.get_state(), other.get_state()):
        validate_state_vector(state)
    validate_state_vector(b"\x01" + b"\x80" * 10 + b"\x00" + b"\x00")  # 11-byte client id
    for bad in (
        b"",
        b"\x01",
        b"\x01\x05",
        b"\x02\x05\x01",
        vu(2**32 - 1) + b"\x01\x01",
        b"\x00\x00",  # trailing
        b"\x01\x01\x01\x00",  # trailing
        b"\x01" + b"\x80" * 11 + b"\x00" + b"\x00",  # 12-byte varint
    ):
        with pytest.raises(ProtocolError):
            validate_state_vector(bad)


def test_large_paste_is_accepted():
    doc = Doc()
    doc.get("t", type=Text).insert(0, "ab😀 " * 25_000)
    update = doc.get_update()
    assert len(update) > 100_000
    validate_update(update)
