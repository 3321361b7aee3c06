"""The map driver: every item's call driven from one event loop in the caller.

Items are read lazily; at most ``bound`` are in flight (started, not finished). With
``ordered=True``, finished results held back for an earlier item still pending count toward
a bound of their own (``HELD_MAX``, or ``bound`` if larger), so one slow item early in the
map does not stall the others. For each item the driver looks up the cache; a miss is an
attempt handed to a transport (threads or processes) or run as a task in the loop (async
mode). Cache lookups, stores and rate-limit admissions all happen in the caller: they are
global. The parts: :mod:`~opero.maps.items` (one item's path), :mod:`~opero.maps.bulk`
(process maps fed in bulk), :mod:`~opero.maps.completion` (results handed out in order).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from opero.maps.bulk import BulkFeed
from opero.maps.completion import HELD_MAX, Completion, Run
from opero.maps.coroutines import CoroutineWorkers
from opero.maps.items import ItemPaths
from opero.maps.stop import MapStop, Stopped, WorkerGate
from opero.maps.transport import Transport

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.core.judge import Judge
    from opero.maps.executors import ExecutorHandle

__all__ = ["MapDriver", "MapSpec", "Run"]


class MapSpec:
    """What a decorated map function decided at decoration time."""

    def __init__(
        self,
        fn: Callable[..., Any],
        judge: Judge,
        layer: CacheLayer | None,
        *,
        mode: str,
        workers: int,
        ordered: bool,
        bound: int,
        batch_max: int,
        handle_factory: Callable[[], ExecutorHandle] | None = None,
        target: Any = None,
        fail_fast: int | None = None,
    ) -> None:
        self.fn = fn
        self.target = target  # process mode: how workers find fn (FunctionRef / ByValue)
        self.handle_factory = handle_factory  # executor mode: a new handle per map call
        self.judge = judge
        self.layer = layer
        #: where attempts run: "async" (an async fn on the loop), "thread", "process" or
        #: "executor" (a given executor or Dask)
        self.mode = mode
        self.workers = workers
        self.ordered = ordered
        self.bound = bound
        self.batch_max = batch_max
        self.name = judge.name
        #: after this many items in a row failed, the map starts no further item
        self.fail_fast = fail_fast


class MapDriver:
    """One call of a map: feeds items, drives their calls, yields results in chunks."""

    def __init__(
        self,
        spec: MapSpec,
        items: Iterable[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float | None = None,
        tally: Callable[[bool], None] | None = None,
        parent: Any = None,
    ) -> None:
        """``deadline``: the one enclosing the map call; ``tally``: told of each item as it
        ends (the progress bar); ``parent``: with telemetry, the OpenTelemetry context of
        the map call (each item's span is its child)."""
        self.spec = spec
        self.items: Iterator[Any] = iter(items)
        self.layer = spec.layer
        judge = spec.judge
        #: when the map stops starting items (``fail_fast``; ``deadline``: the one enclosing
        #: the map call), or None
        self.stop = None
        if spec.fail_fast is not None or deadline is not None:
            self.stop = MapStop(spec.name, spec.fail_fast, deadline)
        self.completion = Completion(spec.ordered, self.stop, tally)
        #: paced: an attempt is sent only to a free worker, one at a time
        paced = judge.paced
        self.transport: Transport | None = None
        # attempts that may be cut at a deadline run one at a time on a worker process,
        # and few items are taken up ahead of a worker (an item's budget runs from then)
        alone = deadline is not None or judge.deadline is not None
        self.bound = min(spec.bound, spec.workers * 4) if alone else spec.bound
        #: ordered: finished results held for an earlier pending item, beyond the window
        self.held_max = max(HELD_MAX, self.bound) if spec.ordered else 0
        if spec.mode != "async":
            self.transport = _TRANSPORTS[spec.mode](spec, paced, alone)
        # first attempts may skip the per-item task (not in a thread map that may stop, nor
        # under a deadline: there an item starts when its first attempt is given a worker) ...
        first_fast = self.transport is not None and judge.plain
        if self.stop is not None and (spec.mode == "thread" or deadline is not None):
            first_fast = False
        gate: asyncio.Semaphore | WorkerGate | None = None
        if self.transport is not None and self.stop is not None:
            gate = WorkerGate(spec.workers)
        elif self.transport is not None and paced:
            gate = asyncio.Semaphore(spec.workers)
        self.paths = ItemPaths(
            self.completion,
            judge,
            self.layer,
            self.transport,
            args,
            kwargs,
            first_fast=first_fast,
            gate=gate,
            ambient=deadline,
            calls=_calls(judge, self.layer),
            parent=parent,
        )
        #: how one item starts, and (optionally) how many items start at once
        self.start: Callable[[int, Any], None] = self.paths.start
        self.feed: Callable[[int, int], int] | None = None
        # ... and, for processes, travel in jobs of several items read in bulk
        self.bulk: BulkFeed | None = None
        if first_fast and spec.mode in ("process", "executor"):
            assert self.transport is not None
            self.bulk = BulkFeed(
                self.completion,
                self.layer,
                self.transport,
                self.items,
                args,
                kwargs,
                judge,
                self.paths,
            )
            self.feed = self.bulk.feed
        elif spec.mode == "async":
            coroutines = CoroutineWorkers(self.paths, spec.workers)
            self.start = coroutines.start
            if self.layer is None:
                self.feed = partial(coroutines.feed, self.items)

    async def stream(self) -> AsyncGenerator[list[Run], None]:
        """Chunks of result runs, in input order (``ordered``) or completion order."""
        completion = self.completion
        completion.wake = asyncio.Event()
        bound = self.bound
        bulk, start, feed = self.bulk, self.start, self.feed
        transport = self.transport
        stop, halted = self.stop, False
        index = 0
        # items read, not handed out: at most `bound` unfinished, `limit` with results held
        in_flight, limit = 0, bound + self.held_max
        exhausted = False
        aborted = True
        try:
            while True:
                if completion.fatal is not None:
                    raise completion.fatal
                if stop is not None and not halted and stop.stopped():
                    halted, feed, start = True, None, self._refuse
                    if bulk is not None and transport is not None:
                        transport.withdraw(Stopped())
                room = min(bound - in_flight + completion.held, limit - in_flight)
                if feed is not None and not exhausted and room > 0:
                    fed = feed(index, room)
                    exhausted = fed < room
                    in_flight += fed
                    index += fed
                    room -= fed
                while not exhausted and room > 0:
                    try:
                        item = next(self.items)
                    except StopIteration:
                        exhausted = True
                        break
                    in_flight += 1
                    room -= 1
                    start(index, item)
                    index += 1
                held = completion.held
                if transport is not None:
                    transport.set_in_flight(in_flight - held)
                if bulk is not None and bulk.pending:
                    bulk.submit_pending()
                chunk = completion.take()
                if chunk:
                    in_flight -= sum(len(run[1]) for run in chunk)
                    yield chunk
                    continue
                if exhausted and in_flight == 0:
                    break
                if completion.held > held and not exhausted:
                    continue  # results now held for an earlier item: room for more items
                await completion.wait()
            aborted = False
        finally:
            await self._close(abort=aborted)

    def _refuse(self, index: int, item: Any) -> None:
        """The map stopped: item ``index`` is not started (past the map's deadline, a cache
        hit still answers it)."""
        stop = self.stop
        assert stop is not None
        if not stop.tripped and self.layer is not None and self.paths.lookup(index, item) is None:
            return
        self.completion.refuse(index, stop.error())

    async def _close(self, *, abort: bool) -> None:
        """End the map. What must not outlive it is stopped synchronously first, so a close
        that is itself cancelled at its first ``await`` still leaves nothing running."""
        for task in list(self.completion.tasks):
            task.cancel()
        if abort and self.transport is not None:
            self.transport.shutdown(abort=True)  # kill the worker processes now
        stopped = asyncio.CancelledError()
        if self.layer is not None and self.paths.leading:
            flights = self.layer.flights
            for key, flight in list(self.paths.leading.items()):
                flights.fail(key, flight, stopped)  # a waiter elsewhere takes over
            self.paths.leading.clear()
        if self.bulk is not None:
            self.bulk.abandon(stopped)
        try:
            await self.completion.cancel_tasks()
        finally:  # also when this close is itself cancelled
            if self.transport is not None:
                await self.transport.close(abort=abort)


def _calls(judge: Judge, layer: Any) -> Any:
    """The items' call spans, with ``telemetry=True`` (else None)."""
    if not judge.options["telemetry"]:
        return None
    from opero.core.telemetry import Calls

    return Calls(judge.name, layer is not None)


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
    from opero.maps.attempts import process_target
    from opero.maps.processes import ProcessTransport

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
