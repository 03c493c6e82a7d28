"""Summarise a py-spy speedscope profile by function: self and inclusive share of busy samples.

    python bench/profile_agg.py PROFILE.json [TOP] [REGEX]

Used for bench/profiles.md. A sample is idle, and dropped, when its leaf is a blocking wait: the
event loop's select (`Runner.run`/`EpollSelector.select` without --native, `uv__io_poll`'s
epoll with it), a thread waiting on a queue, lock or condition (the aiosqlite and AnyIO worker
threads), a sleep. Shares are of the remaining (busy) samples, summed over every thread and,
with `py-spy record --subprocesses`, every process. REGEX keeps only samples with a matching
frame. The last table is the busy samples per thread (and process)."""

import collections
import json
import re
import sys

IDLE_LEAF = re.compile(
    r"epoll_wait|epoll_pwait|^poll$|__poll|^select|pthread_cond_(timed)?wait|futex|"
    r"sem_(timed)?wait|nanosleep|^Condition\.wait|^Runner\.run$|_connection_worker_thread|"
    r"^Queue\.get$|^Lock\.acquire|^_wait_for_tstate_lock|^EpollSelector\.select|^sleep$"
)
# with --native, an unnamed libc leaf under one of these is a wait too
IDLE_CALLER = re.compile(r"PyThread_acquire_lock|uv__io_poll|_queue_SimpleQueue_get_impl")


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    only = re.compile(sys.argv[3]) if len(sys.argv) > 3 else None
    with open(path) as f:
        data = json.load(f)
    frames = data["shared"]["frames"]

    def key(i: int) -> str:
        f = frames[i]
        return f"{f['name']} ({'/'.join((f.get('file') or '').split('/')[-2:])})"

    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    busy = idle = 0.0
    for profile in data["profiles"]:
        pairs = zip(profile.get("samples", []), profile.get("weights", []), strict=True)
        for stack, weight in pairs:
            if not stack:
                continue
            names = [frames[i]["name"] for i in stack]
            caller = next((n for n in reversed(names) if not n.startswith("0x")), "")
            if IDLE_LEAF.search(names[-1]) or (
                names[-1].startswith("0x") and IDLE_CALLER.search(caller)
            ):
                idle += weight
                continue
            keys = [key(i) for i in stack]
            if only and not any(only.search(k) for k in keys):
                continue
            busy += weight
            own[keys[-1]] += weight
            threads[profile.get("name", "?")] += weight
            for k in set(keys):
                total[k] += weight
    print(f"# {path}: busy {busy:.3f} s, idle {idle:.3f} s of samples")
    tables = (("self", own), ("total (inclusive)", total), ("busy by thread", threads))
    for title, counter in tables:
        print(f"## {title}")
        for k, c in counter.most_common(top):
            print(f"{100 * c / busy:5.1f}%  {k}")


if __name__ == "__main__":
    main()
