"""The spill buffer filled to its end by small records: nothing is lost or counted twice."""

from __future__ import annotations

import math
import mmap
from typing import Any

from opero.maps.spill import SIZE, Part, SpillWriter, finished_outcomes, read_spill, run_spilled


def _add(x: Any, y: Any = 0) -> Any:
    if x == "boom":
        raise ValueError("boom")
    return x if y == 0 else x + y


def test_small_records_up_to_the_end_of_the_buffer_then_a_part() -> None:
    raw = mmap.mmap(-1, SIZE)
    spill = SpillWriter(raw)
    spill.begin()
    parts: list[Part] = []
    # ints, floats (with -0.0) and None, 17 bytes each: the buffer fills several times
    items: list[Any] = [[n, -0.0, None, "s"][n % 4] for n in range((SIZE // 17) * 2 + 5)]
    values, failures = run_spilled(_add, [(items, {}, True)], spill, parts.append)
    assert parts and not failures
    sent = [v for part in parts for v in part.values]
    assert sent + values == items
    assert math.copysign(1.0, (sent + values)[1]) == -1.0
    # what reached the caller (parts and the buffer) is every outcome, once
    read = read_spill(raw, 1)
    finished = finished_outcomes(parts, read)
    assert finished is not None
    assert sorted(finished[0]) == list(range(len(items)))
    assert [finished[0][n][1] for n in range(len(items))] == items


def test_rows_with_arguments_and_failures_across_parts() -> None:
    raw = mmap.mmap(-1, SIZE)
    spill = SpillWriter(raw)
    spill.begin()
    parts: list[Part] = []
    big = "x" * (SIZE // 2)
    rows = [(1, 1), ("boom",), (big, ""), (2**70, 1), ("boom",), (3, 0)]
    values, failures = run_spilled(_add, [(rows, {}, False)], spill, parts.append)
    sent = [v for part in parts for v in part.values]
    every = sent + values
    assert every[0] == 2 and every[2] == big and every[3] == 2**70 + 1 and every[5] == 3
    failed = {n for part in parts for n in part.failures} | {len(sent) + n for n in failures}
    assert failed == {1, 4}
