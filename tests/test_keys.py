"""Stable cache-key encoding: canonical (sorted dict keys and set members, every type tagged),
covering None, bool, int, float, str, bytes, containers, enums, dataclasses, dates and times,
Decimal, UUID and Path; never hash()."""

from __future__ import annotations

import datetime as dt
import enum
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import pytest

from opero.cache.encoding import Unkeyable, digest, encode


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclass(frozen=True)
class Point:
    x: int
    y: list[int]


SAMPLES: list[object] = [
    None,
    True,
    False,
    0,
    1,
    -5,
    10**30,
    1.0,
    0.1,
    -0.0,
    "",
    "a",
    "é",
    b"",
    b"a",
    bytearray(b"a"),
    (),
    (1,),
    [1],
    [],
    {},
    {"a": 1},
    set(),
    {1, 2},
    frozenset({1}),
    Color.RED,
    Level.LOW,
    Point(1, [2]),
    dt.datetime(2026, 1, 2, 3, 4, 5),
    dt.date(2026, 1, 2),
    dt.time(1, 2),
    dt.timedelta(seconds=5),
    Decimal("1.10"),
    uuid.UUID(int=5),
    Path("/tmp/x"),
    PurePosixPath("a"),
    {"nested": [1, {"deep": (2, 3)}], "set": {"x", "y"}},
]


def test_every_supported_type_encodes() -> None:
    for s in SAMPLES:
        assert isinstance(digest(s), str)


def test_distinct_values_distinct_keys() -> None:
    keys = [encode(s) for s in SAMPLES]
    assert len(set(keys)) == len(SAMPLES)  # bytes and bytearray included
    assert encode(1) != encode(True) != encode(1.0)
    assert encode((1,)) != encode([1])
    assert encode("1") != encode(1)
    assert encode(Color.RED) != encode(1)
    assert encode(Level.LOW) != encode(1)


def test_canonical_dicts_and_sets() -> None:
    assert encode({"a": 1, "b": 2}) == encode({"b": 2, "a": 1})
    assert encode({3, 1, 2}) == encode({2, 3, 1})
    assert encode(frozenset({"x", "y"})) == encode(frozenset({"y", "x"}))
    assert encode({"a": [1, 2]}) != encode({"a": [2, 1]})


def test_no_ambiguity_in_concatenation() -> None:
    assert encode(("ab", "c")) != encode(("a", "bc"))
    assert encode([[1], 2]) != encode([1, [2]])


@pytest.mark.parametrize("bad", [object(), lambda: 1, Path, [1, object()], {"k": object()}])
def test_unsupported_types_raise(bad: object) -> None:
    with pytest.raises(Unkeyable):
        encode(bad)


def test_deep_nesting_is_unkeyable_not_a_crash() -> None:
    deep: list[object] = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(Unkeyable):
        encode(deep)


def test_stable_across_processes_with_random_hash_seed() -> None:
    code = (
        "from opero.cache.encoding import digest;"
        "print(digest({'b': {1, 2, 3}, 'a': ['x', ('y', 2.5)], 'c': frozenset('abc')}))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(outs) == 1
    assert (
        digest({"b": {1, 2, 3}, "a": ["x", ("y", 2.5)], "c": frozenset("abc")})
        == outs.pop().strip()
    )


class Attrs(dict[str, int]):
    pass


class Slotted(list[int]):
    __slots__ = ("__hidden", "label")

    def __init__(self, items: list[int], label: str, hidden: int) -> None:
        super().__init__(items)
        self.label = label
        self.__hidden = hidden


class Pair(NamedTuple):
    a: int
    b: int


class Money(Decimal):
    pass


def test_every_type_has_its_own_tag() -> None:
    assert encode(b"ab") != encode(bytearray(b"ab"))
    assert encode({"a": 1}) != encode(Attrs(a=1))
    assert encode(Pair(1, 2)) != encode((1, 2))
    assert encode({1}) != encode(frozenset({1}))
    assert encode(Decimal("1.5")) != encode(Money("1.5"))
    assert encode(Path("a")) != encode(PurePosixPath("a"))
    assert encode(1 + 2j) != encode((1.0, 2.0))
    assert encode(re.compile("a")) != encode(re.compile("a", re.IGNORECASE))
    assert encode(re.compile("a")) != encode(re.compile(b"a"))


def test_a_container_subclass_is_keyed_with_its_attributes() -> None:
    red, blue, same = Attrs(a=1), Attrs(a=1), Attrs(a=1)
    red.label, blue.label, same.label = "red", "blue", "red"  # type: ignore[attr-defined]
    assert encode(red) != encode(blue)
    assert encode(red) == encode(same)
    assert encode(Slotted([1], "x", 1)) != encode(Slotted([1], "x", 2))  # a mangled slot
    assert encode(Slotted([1], "x", 1)) != encode(Slotted([1], "y", 1))
    assert encode(Slotted([1], "x", 1)) == encode(Slotted([1], "x", 1))
    opaque = Attrs(a=1)
    opaque.handle = object()  # type: ignore[attr-defined]
    with pytest.raises(Unkeyable):
        encode(opaque)
