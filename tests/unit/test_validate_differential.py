"""The validator against stock Yjs, on tens of thousands of mutated real updates.

The server forwards every update it accepts to Yjs peers as received: whatever Yjs 13.6 throws on
must be refused by collab/validate.py, and whatever Yjs applies must be accepted. The inputs are
real updates Yjs writes (tests/interop/yjs_verdicts.mjs: text with formats and embeds, maps of
every value, arrays, XML, subdocuments, peers' diffs and merges, delete sets, GC and Skip
structs) and the known classes of tests/unit/test_validate_yjs.py, mutated at the level of their
structure (tests/ymutate.py). One Node process applies every input with `Y.applyUpdate` in three
settings: a fresh Y.Doc; a Y.Doc holding the state the update was made on plus a filler update
that supplies whatever else it refers to (so that it integrates instead of waiting); and the
state, the update, then the filler (so that what waited is integrated then). "Yjs throws" means
it threw in any of them, or left a document it could not encode and read again. A document left
with something pending is not a throw: the third setting releases what waited.

The assertions, per input:
- Yjs throws ⇒ the validator refuses it;
- Yjs applies it (everywhere) ⇒ the validator accepts it, unless pycrdt refuses it too, or the
  validator's reason is one of the deliberate refusals of collab/validate.py and the input is of
  that class, which a predicate below recognises on the update as Yjs reads it (tests/yupdate.py);
- the validator accepts it ⇒ pycrdt applies it without a panic (fresh, and after the state and
  the filler), or refuses it for one of the reasons of `PYCRDT_REFUSALS_OF_ACCEPTED`.

COLLAB_DIFF_INPUTS (default 20 000) and COLLAB_DIFF_SEED change the run; so does running this
file as a script (`python -m tests.unit.test_validate_differential --help`) for long runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pycrdt import Doc

from collab import validate as v
from collab.errors import ProtocolError
from tests.conftest import require
from tests.unit.test_validate import DELIBERATE_REFUSALS
from tests.ymutate import Mutator
from tests.yupdate import (
    ANY,
    GC,
    JSON_,
    SKIP,
    STRING,
    TYPE,
    Update,
    YjsReadError,
    filler,
    needed_clocks,
    read_update,
    state_vector,
)

pytestmark = pytest.mark.interop

INPUTS = int(os.environ.get("COLLAB_DIFF_INPUTS", "20000"))
SEED = int(os.environ.get("COLLAB_DIFF_SEED", "1"))
INTEROP = Path(__file__).resolve().parents[1] / "interop"
SCRIPT = INTEROP / "yjs_verdicts.mjs"
NODE_TIMEOUT_S = 300  # 20 000 inputs take Node about 8 s here
U32 = 2**32 - 1
MAX_SAFE = 2**53 - 1
SHOWN = 5  # offending inputs shown per kind of failure

# What yrs refuses (a plain error, no panic) although the validator accepts it and Yjs applies
# it: an item whose parent is an item without a type (Yjs turns it into a GC struct). The
# validator cannot tell, the parent may be in the document; the server closes 1002 all the same.
PYCRDT_REFUSALS_OF_ACCEPTED = ("must be deleted or shared ref type",)


@dataclass
class Case:
    update: bytes
    state: bytes = b""  # what the document held when the update was made
    fill: bytes = b""  # what else the update refers to
    origin: str = ""  # the corpus entry it was made from


# --- the deliberate refusals, recognised on the update as Yjs reads it ---------------------------


def _ids(u: Update) -> Iterator[tuple[int, int, tuple[int, int]]]:
    """(item's client, item's clock, an ID it refers to) for every origin, right origin, parent."""
    for s in u.structs():
        for ref in (s.origin, s.right_origin, s.parent if isinstance(s.parent, tuple) else None):
            if ref is not None:
                yield s.client, s.clock, ref


def _any_beyond(u: Update, limit: int) -> bool:
    return u.largest > limit


def _clock_overflow(u: Update) -> bool:
    ends = [sec.clock + sum(s.length for s in sec.structs) for sec in u.sections]
    ranges = [r.clock + r.length for e in u.deletes for r in e.ranges]
    refs = [ref[1] for _, _, ref in _ids(u)]
    return any(clock > v.MAX_CLOCK for clock in ends + ranges + refs)


def _squash_cost(u: Update) -> int:
    """What yrs spends merging runs of items (see validate.SQUASH_BUDGET), computed anew."""
    cost = 0
    for sec in u.sections:
        run_ref, run_right, size = 0, None, 0
        for s in sec.structs:
            if s.ref in (GC, SKIP):
                run_ref = 0
                continue
            item_size = s.utf8_length if s.ref == STRING else s.length
            if (
                s.ref == run_ref
                and s.origin == (s.client, s.clock - 1)
                and s.right_origin == run_right
            ):
                size += item_size
                cost += size * {STRING: 2, ANY: 64}[s.ref]
            else:
                run_ref, size = (s.ref, item_size) if s.ref in (STRING, ANY) else (0, 0)
            run_right = s.right_origin
    return cost


def _delete_order(u: Update) -> bool:
    clients = [e.client for e in u.deletes]
    if len(set(clients)) < len(clients):
        return True
    for e in u.deletes:
        end = 0
        for r in e.ranges:
            if r.clock < end:
                return True
            end = r.clock + r.length
    return False


PREDICATES: dict[str, Callable[[Update], bool]] = {
    v.TOO_DEEP: lambda u: any(s.any_depth > v.MAX_ANY_DEPTH + 1 for s in u.structs()),
    v.ZERO_LENGTH_GC: lambda u: any(s.ref == GC and s.length == 0 for s in u.structs()),
    v.CLOCK_OVERFLOW: _clock_overflow,
    v.DUPLICATE_CLIENT: lambda u: len({s.client for s in u.sections}) < len(u.sections),
    v.EMPTY_CLIENT: lambda u: any(not sec.structs for sec in u.sections),
    v.SQUASH_TOO_COSTLY: lambda u: _squash_cost(u) > v.SQUASH_BUDGET,
    v.YJS_UNREADABLE: lambda u: any(
        (s.ref == TYPE and s.type_ref == 5) or s.info & 0x10 for s in u.structs()
    ),
    v.YJS_UNSAFE_INTEGER: lambda u: _any_beyond(u, MAX_SAFE),
    v.YJS_TOO_LONG: lambda u: _any_beyond(u, U32),
    v.YJS_ZERO_LENGTH: lambda u: (
        any(s.ref not in (GC, SKIP) and s.length == 0 for s in u.structs())
        or any(r.length == 0 for e in u.deletes for r in e.ranges)
    ),
    v.YJS_SELF_REFERENCE: lambda u: any(
        ref[0] == client and ref[1] >= clock for client, clock, ref in _ids(u)
    ),
    v.YJS_DELETE_ORDER: _delete_order,
    v.LEGACY_JSON: lambda u: any(s.ref == JSON_ for s in u.structs()),
}


# --- the validator and pycrdt --------------------------------------------------------------------


def refusal(update: bytes) -> str | None:
    try:
        v.validate_update(update)
    except ProtocolError as exc:
        return exc.reason
    return None


def pycrdt_error(*updates: bytes) -> str | None:
    """None if a fresh pycrdt Doc applies `updates` in turn and encodes itself again."""
    doc = Doc()
    try:
        for update in updates:
            if update:
                doc.apply_update(update)
        Doc().apply_update(doc.get_update())
    except BaseException as exc:
        if isinstance(exc, Exception) or type(exc).__name__ == "PanicException":
            return f"{type(exc).__name__}: {exc}"
        raise
    return None


# --- the inputs ----------------------------------------------------------------------------------


def node() -> str:
    path = shutil.which("node")
    require(path is not None, "`node` is not on PATH (install Node.js >= 18)")
    require(
        (INTEROP / "node_modules" / "yjs" / "package.json").is_file(),
        f"yjs missing in {INTEROP / 'node_modules'}: run `make interop-deps`",
    )
    assert path is not None
    return path


def yjs_corpus() -> list[Case]:
    out = subprocess.run(
        [node(), str(SCRIPT), "corpus"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=INTEROP,
    ).stdout
    return [
        Case(bytes.fromhex(e["u"]), bytes.fromhex(e["s"]), origin=e["tag"]) for e in json.loads(out)
    ]


def known_classes() -> list[Case]:
    """The hand-made inputs of the unit tests: each refused class, and what is just inside."""
    from tests.unit import test_validate_yjs as known

    cases = [Case(u, origin=f"known: {n}") for n, (u, _) in known.REFUSED_FOR_YJS.items()]
    cases += [Case(u, origin=f"known: {n}") for n, u in known.ACCEPTED_AT_THE_LIMITS.items()]
    for name, (before, update, after, _) in known.REFUSED_FOR_YJS_IN_A_SETTING.items():
        state = b"".join(before[:1])
        cases.append(Case(update, state, b"".join(after[:1]), f"known: {name}"))
    return cases


def with_filler(case: Case) -> Case:
    try:
        need = needed_clocks(read_update(case.update))
        have = state_vector(read_update(case.state)) if case.state else {}
    except YjsReadError:
        return case
    return Case(case.update, case.state, case.fill or filler(need, have), case.origin)


def generate(seed: int, count: int, bases: list[Case]) -> Iterator[Case]:
    """`count` inputs: the bases themselves, then mutations of them (1 to 4 each)."""
    rng = random.Random(seed)
    mutator = Mutator(rng, [b.update for b in bases])
    for base in bases[:count]:
        yield with_filler(base)
    for _ in range(count - min(count, len(bases))):
        base = rng.choice(bases)
        mutated = mutator.mutate(base.update, rng.choice((1, 1, 1, 2, 2, 3, 4)))
        state = base.state if rng.random() < 0.7 else b""
        yield with_filler(Case(mutated, state, origin=base.origin))


def yjs_verdicts(cases: Iterator[Case], sink: list[Case]) -> list[list[str | None]]:
    """Stream `cases` to one Node process (keeping them in `sink`); its verdicts, in order."""
    with subprocess.Popen(
        [node(), str(SCRIPT), "verdicts"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=INTEROP,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdin = proc.stdin

        def feed() -> None:
            try:
                for case in cases:
                    sink.append(case)
                    line = {"u": case.update.hex(), "s": case.state.hex(), "f": case.fill.hex()}
                    stdin.write(json.dumps(line) + "\n")
            finally:
                stdin.close()

        writer = threading.Thread(target=feed, daemon=True)  # generating overlaps Node's work
        writer.start()
        try:
            verdicts = [json.loads(line) for line in proc.stdout]
            errors = proc.stderr.read()
            proc.wait(NODE_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            writer.join(NODE_TIMEOUT_S)
    assert proc.returncode == 0, errors
    assert len(verdicts) == len(sink)
    return verdicts


# --- judging -------------------------------------------------------------------------------------


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[tuple[Case, list[str | None], str | None, str]]] = field(
        default_factory=dict
    )

    def fail(
        self, kind: str, case: Case, verdicts: list[str | None], reason: str | None, note: str
    ) -> None:
        self.failures.setdefault(kind, []).append((case, verdicts, reason, note))

    def describe(self) -> str:
        lines = [f"{n:7} {what}" for what, n in self.counts.most_common()]
        for kind, items in self.failures.items():
            lines.append(f"\n{kind}: {len(items)} inputs; the shortest:")
            for case, verdicts, reason, note in sorted(items, key=lambda i: len(i[0].update))[
                :SHOWN
            ]:
                lines.append(f"  input  {case.update.hex()}  (from {case.origin})")
                if case.state or case.fill:
                    lines.append(f"  state  {case.state.hex()}\n  filler {case.fill.hex()}")
                lines.append(f"  Yjs [fresh, filled, late]: {verdicts}")
                lines.append(f"  validator: {reason or 'accepts'}" + (f"; {note}" if note else ""))
        return "\n".join(lines)


def judge(case: Case, verdicts: list[str | None], report: Report) -> None:
    reason = refusal(case.update)
    if any(x and x.startswith("prelude") for x in verdicts):
        report.fail(
            "the state or filler alone makes Yjs throw (a harness bug)", case, verdicts, reason, ""
        )
        return
    throws = any(x and x.startswith(("throw", "reencode")) for x in verdicts)
    if throws:
        if reason is None:
            report.fail("Yjs throws, the validator accepts", case, verdicts, reason, "")
        report.counts["Yjs throws, refused"] += 1
        return
    if any(x == "pending" for x in verdicts):
        report.counts["(Yjs left something pending in a setting)"] += 1
    if reason is None:
        report.counts["Yjs applies, accepted"] += 1
        for error in (pycrdt_error(case.update), pycrdt_error(case.state, case.fill, case.update)):
            if error is None:
                continue
            if "Panic" not in error and any(r in error for r in PYCRDT_REFUSALS_OF_ACCEPTED):
                report.counts["Yjs applies, accepted, yrs refuses (allowed)"] += 1
                break
            report.fail("the validator accepts, pycrdt fails", case, verdicts, reason, error)
            break
        return
    if reason in PREDICATES:
        try:
            update = read_update(case.update)
        except YjsReadError as exc:
            report.fail(
                "Yjs applies what tests/yupdate.py cannot read", case, verdicts, reason, str(exc)
            )
            return
        if PREDICATES[reason](update):
            report.counts[f"Yjs applies, refused on purpose: {reason}"] += 1
            return
    error = pycrdt_error(case.update)
    if error is not None:
        report.counts["Yjs applies, refused: pycrdt refuses it too"] += 1
        return
    report.fail("Yjs and pycrdt apply it, the validator refuses", case, verdicts, reason, "")


def run(seed: int, count: int) -> Report:
    bases = yjs_corpus() + known_classes()
    cases: list[Case] = []
    verdicts = yjs_verdicts(generate(seed, count, bases), cases)
    report = Report()
    for case, verdict in zip(cases, verdicts, strict=True):
        judge(case, verdict, report)
    return report


def test_the_validator_refuses_what_yjs_throws_on_and_accepts_what_it_applies():
    report = run(SEED, INPUTS)
    assert not report.failures, report.describe()
    # the generator reaches every side, and the known classes are refused as such
    assert report.counts["Yjs throws, refused"] > INPUTS // 20, report.describe()
    assert report.counts["Yjs applies, accepted"] > INPUTS // 20, report.describe()
    for reason in (v.YJS_ZERO_LENGTH, v.YJS_SELF_REFERENCE, v.CLOCK_OVERFLOW, v.LEGACY_JSON):
        assert report.counts[f"Yjs applies, refused on purpose: {reason}"], report.describe()


def test_every_deliberate_refusal_has_a_predicate():
    assert PREDICATES.keys() == DELIBERATE_REFUSALS


def test_the_judge_catches_a_validator_that_lets_through_what_yjs_throws_on(monkeypatch):
    """The differential must fail if the validator forgets a class: drop the zero-length check."""
    corpus = known_classes()
    empty_range = next(c for c in corpus if c.origin == "known: zero-length deleted range")
    verdicts = yjs_verdicts(iter([empty_range]), [])
    monkeypatch.setattr(v, "validate_update", lambda data: None)
    report = Report()
    judge(empty_range, verdicts[0], report)
    assert list(report.failures) == ["Yjs throws, the validator accepts"]


def main() -> None:
    parser = argparse.ArgumentParser(description="The differential run, with more inputs.")
    parser.add_argument("--inputs", type=int, default=INPUTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[SEED])
    parser.add_argument("--chunk", type=int, default=50_000, help="inputs per Node process")
    args = parser.parse_args()
    failed = False
    for seed in args.seeds:
        total = Report()
        for i, start in enumerate(range(0, args.inputs, args.chunk)):
            report = run(seed * 1_000_003 + i, min(args.chunk, args.inputs - start))
            total.counts.update(report.counts)
            for kind, items in report.failures.items():
                total.failures.setdefault(kind, []).extend(items)
        print(f"seed {seed}, {args.inputs} inputs\n{total.describe()}\n")
        failed = failed or bool(total.failures)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
