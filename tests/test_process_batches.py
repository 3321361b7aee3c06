"""Process batches are sized by measured item time: a batch holds about 25 ms of work, so
slow items never queue by the hundred in one worker (a dying or cancelling caller would
leave minutes of work running).

Each item appends its index to a file as it starts (appends are atomic), so the file holds
the order in which the workers started the items. Items are taken from the queue in input
order, a batch at a time; a batch of k items runs on one worker while the others go on with
later items, so an item starts up to about k places away from its index. Small batches keep
the start order close to input order, whatever the timing of a busy machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from opero import operomap

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def twenty_ms(job: tuple[str, int]) -> int:
    log, x = job
    with open(log, "a") as f:
        f.write(f"{x}\n")
    time.sleep(0.02)
    return x


def _displacement(log: Path) -> int:
    order = [int(x) for x in log.read_text().split()]
    return max(abs(rank - index) for rank, index in enumerate(order))


@pytest.mark.parametrize("warm", [False, True])
def test_slow_items_travel_in_small_batches(tmp_path: Path, warm: bool) -> None:
    log = tmp_path / "starts"
    mapped = operomap(mode="process", workers=2, cache=False, progress=False)(twenty_ms)
    if warm:  # measured by an earlier map of the same function
        mapped([(str(tmp_path / "warm"), i) for i in range(40)])
    n = 240
    assert mapped([(str(log), i) for i in range(n)]) == list(range(n))
    # 25 ms of work is about one 20 ms item: a few items per batch, a couple of batches
    # outstanding per worker (more on a busy machine, where items take longer than 20 ms);
    # the first build sent jobs of 30 items (and 256 on long inputs)
    assert _displacement(log) <= 20, log.read_text().split()
