"""timeout= in operomap: a hung attempt fails alone; a process worker that hangs is replaced.

Integration tests (real time, wide margins).
"""

from __future__ import annotations

import time

import pytest

from opero import OperomapError, operomap

from . import map_helpers as h


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_hung_attempt_times_out_and_others_complete(mode: str) -> None:
    f = operomap(mode=mode, workers=2, cache=False, retries=0, timeout=0.5, progress=False)(
        h.hang_on_two
    )
    t0 = time.monotonic()
    with pytest.raises(OperomapError) as info:
        f(range(8))
    took = time.monotonic() - t0
    results = info.value.results
    assert [r for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4, 5, 6, 7]
    assert isinstance(results[2], TimeoutError)
    assert took < 20  # the hung attempt did not hold the map for its 60 s


def test_process_worker_of_a_timed_out_attempt_is_replaced(monkeypatch) -> None:
    import opero.maps.processes as dispatch

    started: list[object] = []
    real = dispatch.ProcessWorker

    def counting(*a: object, **k: object) -> object:
        worker = real(*a, **k)
        started.append(worker)
        return worker

    monkeypatch.setattr(dispatch, "ProcessWorker", counting)
    f = operomap(mode="process", workers=1, cache=False, retries=0, timeout=0.5, progress=False)(
        h.hang_on_two
    )
    with pytest.raises(OperomapError) as info:
        f(range(5))
    assert [r for i, r in enumerate(info.value.results) if i != 2] == [0, 1, 3, 4]
    assert len(started) == 2  # the hung worker was killed and one new worker started
    assert not started[0].process.is_alive()  # type: ignore[attr-defined]
