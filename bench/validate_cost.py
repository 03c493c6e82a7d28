"""What collab.validate.validate_update costs on realistic Yjs traffic (the hot path).

Real updates written by Yjs (tests/interop/node_modules) in Node: a few thousand keystroke
updates (typing with a moving cursor, some deletes, bold toggles, a few map and array edits), and
the sync step 2 of a big document edited by three clients. Each is validated `--repeat` times
(best of `--rounds`, timeit); prints µs per keystroke update and ms per big update.

    PYTHONPATH=$PWD .venv/bin/python bench/validate_cost.py

Run it with PYTHONPATH pointing at two checkouts to compare them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import timeit
from pathlib import Path

from collab.validate import validate_update

NODE_MODULES = Path(__file__).resolve().parents[1] / "tests" / "interop" / "node_modules"

WRITE = r"""
const Y = require('yjs')
const [keystrokes, bigOps] = JSON.parse(require('fs').readFileSync(0, 'utf8'))
let seed = 42
const rand = n => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 16) % n }
const hex = u => Buffer.from(u).toString('hex')

const doc = new Y.Doc(); doc.clientID = 3141592653
const small = []
doc.on('update', u => small.push(hex(u)))
const text = doc.getText('codemirror'), meta = doc.getMap('meta'), list = doc.getArray('list')
let cursor = 0
for (let i = 0; i < keystrokes; i++) {
  const r = rand(100)
  if (r < 80) { text.insert(cursor, 'abcdefghij klmnopé'[rand(18)]); cursor++ }
  else if (r < 88 && cursor > 0) { text.delete(cursor - 1, 1); cursor-- }
  else if (r < 92) { cursor = rand(text.length + 1) }
  else if (r < 95 && text.length > 4) {
    text.format(rand(text.length - 3), 3, {bold: rand(2) ? true : null})
  }
  else if (r < 98) { meta.set('k' + rand(20), {n: i, at: 'x'.repeat(rand(10))}) }
  else { list.insert(rand(list.length + 1), [i]) }
}

const peers = [1, 2, 3].map(id => { const d = new Y.Doc(); d.clientID = 1000000 + id; return d })
for (let i = 0; i < bigOps; i++) {
  const d = peers[i % 3], t = d.getText('codemirror')
  if (rand(10) < 8 || t.length < 10) t.insert(rand(t.length + 1), 'word ')
  else t.delete(rand(t.length - 5), rand(5) + 1)
  if (i % 50 === 0) d.getMap('meta').set('k' + rand(30), [i, 'v', {deep: [1, 2]}])
  if (i % 300 === 299) {  // sync the three peers now and then
    const merged = Y.mergeUpdates(peers.map(p => Y.encodeStateAsUpdate(p)))
    peers.forEach(p => Y.applyUpdate(p, merged))
  }
}
const big = Y.mergeUpdates(peers.map(p => Y.encodeStateAsUpdate(p)))
console.log(JSON.stringify({small, big: hex(big), single: hex(Y.encodeStateAsUpdate(doc))}))
"""


def yjs_updates(keystrokes: int, big_ops: int) -> dict[str, object]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "yjs").is_dir():
        raise SystemExit("needs node and tests/interop/node_modules (make interop-deps)")
    done = subprocess.run(
        [node, "-e", WRITE],
        input=json.dumps([keystrokes, big_ops]),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def best(call: object, repeat: int, rounds: int) -> float:
    """Seconds per call: the best of `rounds` rounds of `repeat` calls."""
    return min(timeit.repeat(call, number=repeat, repeat=rounds)) / repeat  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keystrokes", type=int, default=4000)
    parser.add_argument("--big-ops", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    updates = yjs_updates(args.keystrokes, args.big_ops)
    small = [bytes.fromhex(h) for h in updates["small"]]  # type: ignore[attr-defined]
    big = bytes.fromhex(updates["big"])  # type: ignore[arg-type]
    single = bytes.fromhex(updates["single"])  # type: ignore[arg-type]

    def all_small() -> None:
        for update in small:
            validate_update(update)

    per_small = best(all_small, max(1, args.repeat // 4), args.rounds) / len(small)
    mean = sum(map(len, small)) / len(small)
    print(f"{len(small)} keystroke updates (mean {mean:.0f} B): {per_small * 1e6:.2f} µs each")
    for name, update in (("big sync step 2", big), ("single-client document", single)):
        per = best(lambda u=update: validate_update(u), args.repeat, args.rounds)  # type: ignore[misc]
        print(f"{name} ({len(update) / 1024:.0f} KiB): {per * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
