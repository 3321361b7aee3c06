"""What one map call is made of, decided from its spec and the deadline enclosing it: the
transport of its ``mode`` (none for ``mode="async"``), how many items it takes up ahead,
whether first attempts skip the per-item task, and what an attempt takes before it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from opero.maps.completion import HELD_MAX
from opero.maps.stop import WorkerGate

if TYPE_CHECKING:
    from opero.maps.map_driver import MapSpec
    from opero.maps.transport import Transport

__all__ = ["Shape", "transport_of"]


class Shape:
    """The decisions of one map call that do not change while it runs."""

    __slots__ = ("alone", "bound", "first_fast", "held_max", "paced")

    def __init__(self, spec: MapSpec, deadline: float | None, may_stop: bool) -> None:
        judge = spec.judge
        #: an attempt is sent only to a free worker, one at a time
        self.paced = judge.paced
        #: attempts that may be cut at a deadline run one at a time on a worker process,
        #: and few items are taken up ahead of a worker (an item's budget runs from then)
        self.alone = deadline is not None or judge.deadline is not None
        #: items in flight (started, not finished) at most
        self.bound = min(spec.bound, spec.workers * 4) if self.alone else spec.bound
        #: ordered: finished results held for an earlier pending item, beyond the window
        self.held_max = max(HELD_MAX, self.bound) if spec.ordered else 0
        # first attempts may skip the per-item task (not in a thread map that may stop,
        # nor under a deadline: there an item starts when its first attempt is given a
        # worker)
        halting = may_stop and (spec.mode == "thread" or deadline is not None)
        self.first_fast = spec.mode != "async" and judge.plain and not halting

    def gate(self, spec: MapSpec, may_stop: bool) -> asyncio.Semaphore | WorkerGate | None:
        """The map's free workers, taken by each attempt before it runs (None: attempts go
        to the transport as they come)."""
        if spec.mode == "async":
            return None
        if may_stop:
            return WorkerGate(spec.workers)
        return asyncio.Semaphore(spec.workers) if self.paced else None


def transport_of(spec: MapSpec, shape: Shape) -> Transport | None:
    """Where the map's attempts run (None: ``mode="async"`` awaits them in the loop)."""
    make = _TRANSPORTS.get(spec.mode)
    return make(spec, shape.paced, shape.alone) if make is not None else None


def _threads(spec: MapSpec, paced: bool, alone: bool) -> Transport:
    from opero.maps.threads import ThreadTransport

    judge = spec.judge
    return ThreadTransport(
        spec.fn,
        spec.workers,
        name=spec.name,
        timeout=judge.timeout,
        held_back=judge.held_back,
        noticed=judge.noticed,
    )


def _processes(spec: MapSpec, paced: bool, alone: bool) -> Transport:
    from opero.maps.processes import ProcessTransport
    from opero.maps.targets import process_target

    judge = spec.judge
    return ProcessTransport(
        spec.target if spec.target is not None else process_target(spec.fn),
        spec.workers,
        1 if paced else spec.batch_max,
        name=spec.name,
        timeout=judge.timeout,
        paced=paced,
        pauses=judge.pauses,
        held_back=judge.held_back,
        alone=alone,
    )


def _executor(spec: MapSpec, paced: bool, alone: bool) -> Transport:
    from opero.maps.executors import ExecutorTransport

    assert spec.handle_factory is not None
    judge = spec.judge
    return ExecutorTransport(
        spec.fn,
        spec.handle_factory(),
        spec.workers,
        1 if paced or alone else spec.batch_max,
        name=spec.name,
        timeout=judge.timeout,
        paced=paced or alone,
        held_back=judge.held_back,
    )


#: the transport of each place attempts run (``mode="async"`` awaits them in the loop)
_TRANSPORTS: dict[str, Callable[[MapSpec, bool, bool], Transport]] = {
    "thread": _threads,
    "process": _processes,
    "executor": _executor,
}
