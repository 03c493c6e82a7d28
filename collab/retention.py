"""Which automatic versions to keep as they age: a backup rotation.

The rules are a comma-separated list of AGE:KEEP, youngest first (the `version_retention`
setting, default `24h:all,7d:1h,90d:1d,forever:1w`): a version up to AGE old is kept if KEEP is
`all`, or if it is the newest automatic version of its KEEP-long slot of time (slots are aligned
to the epoch: each hour, day or week; each coarser slot is a union of finer ones when the
periods divide each other, so the version a slot keeps is the one its last finer slot kept). A
version older than the last AGE goes, unless that AGE is `forever`. Durations are a number and a
unit: s, m, h, d or w.

Named and restore versions are always kept, and never make an automatic one redundant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from storage import VersionInfo

DEFAULT_RULES = "24h:all,7d:1h,90d:1d,forever:1w"
_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION = re.compile(r"(\d+)([smhdw])")


class Rule(NamedTuple):
    max_age_ms: int | None  # None: forever
    every_ms: int | None  # None: keep all


def parse_rules(text: str) -> list[Rule]:
    """The rules of a retention setting; ValueError when it is not one."""
    rules: list[Rule] = []
    for part in text.split(","):
        age, sep, keep = part.strip().partition(":")
        if not sep:
            raise ValueError(f"retention rule {part.strip()!r} is not AGE:KEEP")
        max_age = None if age.strip() == "forever" else _duration(age)
        every = None if keep.strip() == "all" else _duration(keep)
        if rules and not _older(max_age, rules[-1].max_age_ms):
            raise ValueError("retention ages must grow, and 'forever' must come last")
        rules.append(Rule(max_age, every))
    return rules


def _older(age: int | None, than: int | None) -> bool:
    return than is not None and (age is None or age > than)


def _duration(text: str) -> int:
    found = _DURATION.fullmatch(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise ValueError(f"{text.strip()!r} is not a duration like 30s, 10m, 24h, 7d or 2w")
    return int(found.group(1)) * _UNITS[found.group(2)]


def thin(versions: Sequence[VersionInfo], now_ms: int, rules: Sequence[Rule]) -> list[int]:
    """The ids of the automatic versions the rules do not keep at `now_ms`, oldest first."""
    autos = sorted((v for v in versions if v.kind == "auto"), key=lambda v: (v.created_at_ms, v.id))
    drop: list[int] = []
    for index, version in enumerate(autos):
        rule = _rule_for(now_ms - version.created_at_ms, rules)
        if rule is None:
            drop.append(version.id)
        elif rule.every_ms is not None:
            slot = version.created_at_ms // rule.every_ms
            newer = autos[index + 1] if index + 1 < len(autos) else None
            if newer is not None and newer.created_at_ms // rule.every_ms == slot:
                drop.append(version.id)  # the newer one keeps this slot
    return drop


def _rule_for(age_ms: int, rules: Sequence[Rule]) -> Rule | None:
    for rule in rules:
        if rule.max_age_ms is None or age_ms <= rule.max_age_ms:
            return rule
    return None
