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
from typing import TYPE_CHECKING

from opero.maps.bulk import BulkFeed
from opero.maps.completion import Completion, Run
from opero.maps.coroutines import CoroutineWorkers
from opero.maps.intake import Feed, Intake, Start
from opero.maps.items import ItemPaths
from opero.maps.modes import Shape, transport_of
from opero.maps.stop import MapStop, Stopped

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.core.judge import Judge
    from opero.core.telemetry import Calls
    from opero.maps.executors import ExecutorHandle
    from opero.maps.records import Args, Function, Kwargs
    from opero.maps.targets import ByValue, FunctionRef

__all__ = ["MapDriver", "MapSpec", "Run"]


class MapSpec:
    """What a decorated map function decided at decoration time."""

    def __init__(
        self,
        fn: Function,
        judge: Judge,
        layer: CacheLayer | None,
        *,
        mode: str,
        workers: int,
        ordered: bool,
        bound: int,
        batch_max: int,
        handle_factory: Callable[[], ExecutorHandle] | None = None,
        target: FunctionRef | ByValue | None = None,
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
        items: Iterable[object],
        args: Args,
        kwargs: Kwargs,
        deadline: float | None = None,
        tally: Callable[[bool], None] | None = None,
        parent: object = None,
    ) -> None:
        """``deadline``: the one enclosing the map call; ``tally``: told of each item as it
        ends (the progress bar); ``parent``: with telemetry, the OpenTelemetry context of
        the map call (each item's span is its child)."""
        self.layer = spec.layer
        #: when the map stops starting items (``fail_fast``; ``deadline``: the one enclosing
        #: the map call), or None
        self.stop = _stop_of(spec, deadline)
        self.halted = False
        self.completion = Completion(spec.ordered, self.stop, tally)
        may_stop = self.stop is not None
        shape = Shape(spec, deadline, may_stop)
        self.transport = transport_of(spec, shape)
        self.paths = ItemPaths(
            self.completion,
            spec.judge,
            self.layer,
            self.transport,
            args,
            kwargs,
            first_fast=shape.first_fast,
            gate=shape.gate(spec, may_stop),
            ambient=deadline,
            calls=_calls(spec.judge, self.layer),
            parent=parent,
        )
        lazy: Iterator[object] = iter(items)
        # processes travel in jobs of several items read in bulk
        self.bulk = self._bulk(spec, shape, lazy, args, kwargs)
        self.intake = self._intake(spec, shape, lazy)

    def _bulk(
        self,
        spec: MapSpec,
        shape: Shape,
        items: Iterator[object],
        args: Args,
        kwargs: Kwargs,
    ) -> BulkFeed | None:
        if not shape.first_fast or spec.mode not in ("process", "executor"):
            return None
        assert self.transport is not None
        return BulkFeed(
            self.completion, self.layer, self.transport, items, args, kwargs, spec.judge, self.paths
        )

    def _intake(self, spec: MapSpec, shape: Shape, items: Iterator[object]) -> Intake:
        """How items start: one by one on their paths, in bulk (processes), or queued for
        the worker coroutines (async mode)."""
        start: Start = self.paths.start
        feed: Feed | None = None
        if self.bulk is not None:
            feed = self.bulk.feed
        elif spec.mode == "async":
            coroutines = CoroutineWorkers(self.paths, spec.workers)
            start = coroutines.start
            if self.layer is None:
                feed = partial(coroutines.feed, items)
        return Intake(items, start, feed, shape.bound, shape.held_max)

    async def stream(self) -> AsyncGenerator[list[Run], None]:
        """Chunks of result runs, in input order (``ordered``) or completion order."""
        completion, intake = self.completion, self.intake
        aborted = True
        try:
            while True:
                completion.raise_fatal()
                self._halt_if_stopped()
                held = completion.held
                intake.top_up(held)
                self._send(intake.in_flight - held)
                chunk = completion.take()
                if chunk:
                    intake.handed_out(chunk)
                    yield chunk
                    continue
                if intake.finished:
                    break
                if completion.held > held and not intake.exhausted:
                    continue  # results now held for an earlier item: room for more items
                await completion.wait()
            aborted = False
        finally:
            await self._close(abort=aborted)

    def _halt_if_stopped(self) -> None:
        """Once the map has stopped, items not yet started are refused."""
        stop = self.stop
        if stop is None or self.halted or not stop.stopped():
            return
        self.halted = True
        self.intake.refuse_rest(self._refuse)
        if self.bulk is not None and self.transport is not None:
            self.transport.withdraw(Stopped())

    def _send(self, unfinished: int) -> None:
        """Tell the transport how many items are in flight; send the bulk-fed misses."""
        if self.transport is not None:
            self.transport.set_in_flight(unfinished)
        bulk = self.bulk
        if bulk is not None and bulk.pending:
            bulk.submit_pending()

    def _refuse(self, index: int, item: object) -> None:
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
        self.completion.cancel_soon()
        if abort and self.transport is not None:
            self.transport.shutdown(abort=True)  # kill the worker processes now
        stopped = asyncio.CancelledError()
        self.paths.abandon(stopped)
        if self.bulk is not None:
            self.bulk.abandon(stopped)
        try:
            await self.completion.cancel_tasks()
        finally:  # also when this close is itself cancelled
            if self.transport is not None:
                await self.transport.close(abort=abort)


def _stop_of(spec: MapSpec, deadline: float | None) -> MapStop | None:
    if spec.fail_fast is None and deadline is None:
        return None
    return MapStop(spec.name, spec.fail_fast, deadline)


def _calls(judge: Judge, layer: CacheLayer | None) -> Calls | None:
    """The items' call spans, with ``telemetry=True`` (else None)."""
    if not judge.options["telemetry"]:
        return None
    from opero.core.telemetry import Calls

    return Calls(judge.name, layer is not None)
