"""The shared buffer a worker records finished outcomes in (read when it dies)."""

from __future__ import annotations

import mmap
from typing import Any

from opero.maps.spill import SIZE, Part, SpillWriter, read_spill, run_spilled


class Odd:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Odd)


def _fn(x: Any) -> Any:
    if x == "boom":
        raise ValueError("boom")
    return x


def test_every_kind_of_outcome_reads_back() -> None:
    raw = mmap.mmap(-1, SIZE)
    spill = SpillWriter(raw)
    spill.begin()
    items: list[Any] = [7, -(2**63), 2**70, 1.5, None, True, "text", (1, [2]), Odd(), "boom"]
    values, failures = run_spilled(_fn, [(items, {}, True)], spill, lambda part: None)
    read = read_spill(raw, 1)
    assert read is not None
    outcomes, all_started = read
    assert not all_started
    assert [outcomes[n][1] for n in range(9)] == items[:9]
    assert type(outcomes[5][1]) is bool and type(outcomes[3][1]) is float
    ok, exc, tb = outcomes[9]
    assert not ok and isinstance(exc, ValueError) and "boom" in (tb or "")
    assert values[:9] == items[:9] and list(failures) == [9]


def test_another_batch_number_reads_as_never_begun() -> None:
    raw = mmap.mmap(-1, SIZE)
    spill = SpillWriter(raw)
    spill.begin()
    assert read_spill(raw, 2) is None
    spill.begin(all_started=True)
    assert read_spill(raw, 2) == ({}, True)


def test_outcomes_too_large_go_ahead_as_parts() -> None:
    raw = mmap.mmap(-1, SIZE)
    spill = SpillWriter(raw)
    spill.begin()
    parts: list[Part] = []
    big = "x" * (SIZE // 3)
    items = [1, big, 2, big, 3, big, 4]
    values, _ = run_spilled(_fn, [(items, {}, True)], spill, parts.append)
    sent = [v for part in parts for v in part.values]
    assert sent + values == items
    read = read_spill(raw, 1)
    assert read is not None
    # the buffer holds only what was not sent ahead
    assert [read[0][n][1] for n in sorted(read[0])] == items[len(sent) :]


def test_a_closed_buffer_reads_as_nothing() -> None:
    raw = mmap.mmap(-1, SIZE)
    raw.close()
    assert read_spill(raw, 1) is None
