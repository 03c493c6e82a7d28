"""Retention of automatic versions (collab/retention.py): the rules parse, and `thin` keeps what
a backup rotation keeps: everything young, then one per hour, day, week; named and restore
versions always."""

from __future__ import annotations

import pytest

from collab.retention import DEFAULT_RULES, Rule, parse_rules, thin
from storage import VersionInfo

H = 3_600_000
D = 24 * H
NOW = 1_000 * 7 * D  # a week boundary (slots are aligned to the epoch)


def version(id: int, age_ms: int, kind: str = "auto") -> VersionInfo:
    return VersionInfo(id, "d", NOW - age_ms, kind, None, (), 10)


def test_the_default_rules_parse() -> None:
    assert parse_rules(DEFAULT_RULES) == [
        Rule(D, None),
        Rule(7 * D, H),
        Rule(90 * D, D),
        Rule(None, 7 * D),
    ]
    assert parse_rules(" 30m:all , 2w:10s ") == [Rule(30 * 60_000, None), Rule(14 * D, 10_000)]


@pytest.mark.parametrize(
    "text",
    ["", "24h", "24h:all,7d", "1y:all", "0h:all", "7d:all,24h:1h", "forever:1w,7d:1h", "x:all"],
)
def test_bad_rules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rules(text)


def test_young_versions_are_all_kept() -> None:
    versions = [version(i, i * 60_000) for i in range(1, 100)]  # one a minute, 99 minutes
    assert thin(versions, NOW, parse_rules(DEFAULT_RULES)) == []


def test_older_ones_one_per_hour_day_week_the_newest_of_each() -> None:
    rules = parse_rules(DEFAULT_RULES)
    # every 10 minutes for 200 days
    versions = [version(i, i * 600_000) for i in range(1, 200 * 144)]
    drop = set(thin(versions, NOW, rules))
    kept = [v for v in versions if v.id not in drop]
    ages = [NOW - v.created_at_ms for v in kept]
    young = [a for a in ages if a <= D]
    assert len(young) == 144  # all within 24 h (10 minutes .. 24 h)
    hourly = [a for a in ages if D < a <= 7 * D]
    assert len(hourly) == 6 * 24  # one per hour for six days
    daily = [a for a in ages if 7 * D < a <= 90 * D]
    assert len(daily) == 83
    weekly = [a for a in ages if a > 90 * D]
    assert 15 <= len(weekly) <= 16
    for v in kept:  # each kept one is the newest of its slot
        age = NOW - v.created_at_ms
        every = H if D < age <= 7 * D else D if 7 * D < age <= 90 * D else 7 * D
        if age > D:
            slot = [w for w in versions if w.created_at_ms // every == v.created_at_ms // every]
            assert max(w.created_at_ms for w in slot) == v.created_at_ms
    # thinning again removes nothing more
    assert thin(kept, NOW, rules) == []


def test_named_and_restore_versions_are_always_kept() -> None:
    rules = parse_rules("1h:all,2h:1h")  # nothing older than 2 h
    versions = [
        version(1, 10 * D, "named"),
        version(2, 10 * D),
        version(3, 5 * D, "restore"),
        version(4, 90 * 60_000 + 1),
        version(5, 90 * 60_000, "named"),
        version(6, 90 * 60_000 - 1),
        version(7, 1),
    ]
    # 2: too old; 4: 6 is newer in the same hour (the named 5 does not count)
    assert thin(versions, NOW, rules) == [2, 4]
