"""One item of a map, from its cache lookup to its end.

When the judge needs nothing before the first attempt (it is plain), the first attempt of
an item costs no task: it goes to the transport with a callback, and only an item whose
first attempt failed gets a task, in which the judge settles that failure and the driver
goes on with ``invoke`` = "run on a worker" (so backoff sleeps happen in the caller, never
on a worker). Otherwise each item is a task driving its whole call. An item whose key another caller
is computing waits for that flight (or takes over if it is abandoned).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from opero.cache.store import MISS
from opero.core.callables import CoroutineType
from opero.core.clock import CLOCK
from opero.core.drive import AsyncInvoke, drive_async, invoker_async
from opero.maps.stop import ItemGate, Stopped

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.cache.singleflight import Flight
    from opero.core.judge import Judge
    from opero.core.telemetry import Calls
    from opero.maps.completion import Completion
    from opero.maps.records import Args, Kwargs, Outcome
    from opero.maps.stop import WorkerGate
    from opero.maps.transport import Transport

__all__ = ["ItemPaths", "Missed"]


class Missed(NamedTuple):
    """An item the cache did not answer: its key (None: uncached) and call arguments."""

    key: Hashable | None
    args: Args


class ItemPaths:
    """The per-item paths of one map call."""

    def __init__(
        self,
        completion: Completion,
        judge: Judge,
        layer: CacheLayer | None,
        transport: Transport | None,
        args: Args,
        kwargs: Kwargs,
        *,
        first_fast: bool,
        gate: asyncio.Semaphore | WorkerGate | None = None,
        ambient: float | None = None,
        calls: Calls | None = None,
        parent: object = None,
    ) -> None:
        self.completion = completion
        self.judge = judge
        self.counters = judge.counters
        self.layer = layer
        self.transport = transport
        #: one attempt: sent to a worker, or (async mode) awaited in the loop
        self.invoke: AsyncInvoke = (
            transport.invoke if transport is not None else invoker_async(judge)
        )
        self.args = args
        self.kwargs = kwargs
        #: first attempts skip the per-item task
        self.first_fast = first_fast
        #: flights this map leads through the task-free first attempt (abandoned on abort)
        self.leading: dict[Hashable, Flight] = {}
        #: a rate-limited map's free workers: an attempt takes one before booking its admission
        #: (a :class:`WorkerGate` when the map may stop: see :mod:`opero.maps.stop`)
        self.gate = gate
        self.stop = completion.stop
        #: the deadline enclosing the map call (``CLOCK.monotonic()`` time), or None
        self.ambient = ambient
        #: telemetry: the items' call spans, children of ``parent`` (the OpenTelemetry
        #: context current at the map call), or None
        self.calls = calls
        self.parent = parent

    def deadline(self) -> float | None:
        """The deadline of an item taken up now: the function's own ``deadline=`` from now,
        or the one enclosing the map call if that is earlier."""
        own, ambient = self.judge.deadline, self.ambient
        if own is None:
            return ambient
        at = CLOCK.monotonic() + own
        return at if ambient is None or at < ambient else ambient

    def gate_of(self, started: bool) -> Any:
        """What an item's attempts take before they run: the map's free workers; when the
        map may stop, the item's own gate (its first attempt refused once it has)."""
        if self.stop is None:
            return self.gate
        assert not isinstance(self.gate, asyncio.Semaphore)
        return ItemGate(self.gate, self.stop, started)

    def lookup(self, index: int, item: object) -> Missed | None:
        """Answer item ``index`` from the cache (None), or say what to compute."""
        call_args = (item, *self.args)
        key: Hashable | None = None
        layer = self.layer
        if layer is not None:
            key = layer.key(call_args, self.kwargs)
            if key is not None:
                value = layer.get(key)
                if value is not MISS:
                    self.counters.hits += 1
                    if self.calls is not None:
                        self.calls.hit(self.parent)
                    self.completion.finish(index, True, value)
                    return None
        return Missed(key, call_args)

    def start(self, index: int, item: object) -> None:
        missed = self.lookup(index, item)
        if missed is None:
            return
        key, call_args = missed.key, missed.args
        kwargs = self.kwargs
        layer = self.layer
        if self.first_fast and not self.judge.pauses.active:
            flight: Flight | None = None
            if key is not None:
                assert layer is not None
                flight, leader = layer.flights.join(key)
                if not leader:
                    self.counters.entered += 1
                    self.completion.spawn(self.follow(index, key, call_args, flight))
                    return
            if flight is not None:
                self.leading[key] = flight
            assert self.transport is not None
            self.judge.plain_started()
            self.transport.submit(
                call_args, kwargs, partial(self._first_done, index, key, flight, call_args)
            )
            return
        self.counters.entered += 1
        self.completion.spawn(self.whole(index, key, call_args))

    def abandon(self, error: BaseException) -> None:
        """The map ended: the flights it still leads fail with ``error`` (a waiter
        elsewhere takes over)."""
        layer = self.layer
        if layer is None or not self.leading:
            return
        for key, flight in list(self.leading.items()):
            layer.flights.fail(key, flight, error)
        self.leading.clear()

    def store(self, key: Hashable | None, flight: Flight | None, value: object, args: Args) -> None:
        """A computed value: cache it, wake the callers waiting on its flight."""
        if key is None or flight is None:
            return
        assert self.layer is not None
        self.leading.pop(key, None)
        self.layer.put(key, value, args)
        self.layer.flights.succeed(key, flight, value)

    def _first_done(
        self,
        index: int,
        key: Hashable | None,
        flight: Flight | None,
        call_args: Args,
        outcome: Outcome,
    ) -> None:
        ok, value, _tb = outcome
        if ok and type(value) is not CoroutineType:  # (a coroutine: judged, refused)
            self.store(key, flight, value, call_args)
            self.completion.finish(index, True, value)
            return
        self.completion.spawn(self.retry(index, key, flight, call_args, outcome[:2]))

    def fatal(self, exc: BaseException) -> bool:
        """Whether ``exc`` (not an ``Exception``) came from the function, not from this
        task being cancelled by the map itself."""
        task = asyncio.current_task()
        return not (
            isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling()
        )

    async def retry(
        self,
        index: int,
        key: Hashable | None,
        flight: Flight | None,
        call_args: Args,
        first: BaseException | tuple[bool, Any],
    ) -> None:
        """The rest of an item's call after its first attempt, made on a fast path, did not
        simply succeed: the judge settles that outcome first (``first``: the exception, or
        ``(ok, value)``)."""
        layer = self.layer
        judge = self.judge
        try:
            call = judge.call(call_args, self.kwargs, plain=True, item=index)
            outcome = first if isinstance(first, tuple) else (False, first)
            value = await drive_async(judge, call, self.invoke, outcome, self.gate_of(True))
        except BaseException as exc:
            if key is not None and flight is not None:
                assert layer is not None
                self.leading.pop(key, None)
                layer.flights.fail(key, flight, exc)
            if not isinstance(exc, Exception):
                if self.fatal(exc):
                    self.completion.stop_map(exc)
                    return
                raise
            self.completion.finish(index, False, exc)
            return
        self.store(key, flight, value, call_args)
        self.completion.finish(index, True, value)

    async def follow(self, index: int, key: Hashable, call_args: Args, flight: Flight) -> None:
        """An item whose key another caller is computing: wait, or take over."""
        assert self.layer is not None
        await self.layer.flights.wait_async(flight)
        if not flight.abandoned:
            if flight.error is not None:
                self.completion.finish(index, False, flight.error)
            else:
                self.completion.finish(index, True, flight.value)
            return
        await self.whole(index, key, call_args)

    async def whole(self, index: int, key: Hashable | None, call_args: Args) -> None:
        """The whole call of one item, as a task."""
        judge = self.judge
        layer = self.layer
        kwargs = self.kwargs
        invoke, gate = self.invoke, self.gate_of(False)
        at = self.deadline()  # the item's budget counts from here (its cache lookup)

        async def run(a: Args, k: Kwargs) -> object:
            call = judge.call(a, k, deadline=at, item=index)
            return await drive_async(judge, call, invoke, None, gate)

        calls = self.calls  # telemetry: the item's span, current while it runs
        opened = calls.begin(self.parent) if calls is not None else None
        try:
            if layer is not None and key is not None:
                value = await layer.fill_async(key, run, call_args, kwargs)
            else:
                value = await run(call_args, kwargs)
        except Exception as exc:
            self._traced(opened, exc)
            self.completion.finish(index, False, exc)
        except Stopped:
            assert self.stop is not None
            error = self.stop.error()
            self._traced(opened, error)
            self.completion.refuse(index, error)
        except BaseException as exc:
            self._traced(opened, exc)
            if not self.fatal(exc):
                raise
            self.completion.stop_map(exc)
        else:
            self._traced(opened, None)
            self.completion.finish(index, True, value)

    def _traced(self, opened: Any, error: BaseException | None) -> None:
        if opened is not None:
            assert self.calls is not None
            self.calls.end(opened, error)
