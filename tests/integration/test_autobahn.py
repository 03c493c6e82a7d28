"""The Autobahn TestSuite's cases against our WebSocket layer (collab/wire.py).

Every socket of `collab serve` speaks WebSocket through our own framing code, not a library's, so
it is held to the suite every WebSocket implementation is held to. kosoku (PyPI) runs the
suite's own case files; tests/wire_echo.py puts our protocol class behind an echo.

- 1.x-7.x, 9.x and 10.x: framing, pings, reserved bits, opcodes, fragmentation, UTF-8, the
  closing handshake, large messages. Every case OK, save two kinds the suite allows:
  6.4.1-6.4.4 are NON-STRICT (invalid UTF-8 in a fragmented text message is refused when the
  message is complete, not at the fragment that broke it), and 7.1.6 and 7.13.x are
  INFORMATIONAL (what happens is not defined by the RFC).
- 12.x and 13.x: permessage-deflate (the cases of messages up to 4 KiB, and one of 8 KiB
  messages in fragments: the larger ones take minutes). 13.3 and 13.5 offer
  `server_max_window_bits=9`, which we decline (that connection is not compressed: every
  connection shares one compressed frame, made with zlib's 15 bits; browsers never offer it):
  the suite calls that UNIMPLEMENTED, and the RFC lets a server decline an offer. 13.4 and 13.6
  offer 15, the default, which we accept.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fnmatch import fnmatch

import anyio
import pytest

from tests.conftest import free_port
from tests.procs import ROOT

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

# kosoku runs in a process of its own: it puts a `pkg_resources` of its own in sys.modules (for
# the case files), which breaks what later tests of this process import from the real one.
RUNNER = """
import asyncio, json, sys
import kosoku

async def main():
    try:
        results = await kosoku.run_fuzzingclient(
            sys.argv[1], cases=json.loads(sys.argv[2]), concurrency=2
        )
    except kosoku.FailureError as failure:  # (an UNIMPLEMENTED case counts as one)
        results = failure.results
    rows = [
        [r.case_id, r.behavior.value, r.behavior_close.value, r.description, r.result]
        for r in results
    ]
    print(json.dumps(rows))

asyncio.run(main())
"""

# (ids, not globs: kosoku's "12.*.1" also takes 12.1.10-12.1.18, the slow ones)
DEFLATE_CASES = [
    *(f"12.{group}.{n}" for group in range(1, 6) for n in range(1, 6)),
    "12.2.11",  # (8 KiB messages in 256-byte fragments)
    *(f"13.{group}.{n}" for group in range(1, 8) for n in range(1, 6)),
]
ALLOWED = {  # a case's verdicts the suite accepts, where they are not OK/OK
    "6.4.*": ("NON-STRICT", "OK"),
    "7.1.6": ("INFORMATIONAL", "INFORMATIONAL"),
    "7.13.*": ("INFORMATIONAL", "INFORMATIONAL"),
    "13.3.*": ("UNIMPLEMENTED", "OK"),
    "13.5.*": ("UNIMPLEMENTED", "OK"),
}


def expected(case_id: str) -> tuple[str, str]:
    for pattern, verdicts in ALLOWED.items():
        if fnmatch(case_id, pattern):
            return verdicts
    return ("OK", "OK")


async def test_the_autobahn_cases() -> None:
    port = free_port()
    command = [sys.executable, "-m", "tests.wire_echo", str(port), "--deflate"]
    async with await anyio.open_process(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as echo:
        try:
            assert echo.stdout is not None
            with anyio.fail_after(20):
                assert b"ready" in await echo.stdout.receive()
            cases = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
            url = f"ws://127.0.0.1:{port}"
            with anyio.fail_after(240):
                run = await anyio.run_process(
                    [sys.executable, "-c", RUNNER, url, json.dumps(cases + DEFLATE_CASES)],
                    cwd=ROOT,
                    stderr=None,  # (shown by pytest when the test fails)
                )
            rows = json.loads(run.stdout)
        finally:
            echo.kill()
    verdicts = {case_id: (behavior, close) for case_id, behavior, close, *_ in rows}
    wrong = {
        case_id: (verdicts[case_id], description, result)
        for case_id, _, _, description, result in rows
        if verdicts[case_id] != expected(case_id)
    }
    assert not wrong, wrong
    # the whole of each section ran (the suite's counts), so nothing passed by not running
    sections = [case_id.split(".")[0] for case_id in verdicts]
    counts = {s: sections.count(s) for s in ("1", "2", "3", "4", "5", "6", "7", "9", "10")}
    assert counts == {
        **{"1": 16, "2": 11, "3": 7, "4": 10, "5": 20},
        **{"6": 145, "7": 37, "9": 54, "10": 1},
    }
    assert sections.count("12") == 5 * 5 + 1 and sections.count("13") == 7 * 5
