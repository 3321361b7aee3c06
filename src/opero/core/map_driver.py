"""The map driver: every item's pipeline driven from one event loop in the caller.

Items are read lazily; at most ``bound`` are in flight (results held back for
``ordered=True`` count). For each item the driver looks up the cache; a miss is an attempt
handed to the dispatcher (threads or processes) or run as a task in the loop (async mode).
When the pipeline needs nothing before the first attempt (no fallback, no rate limit), the
first attempt of an item costs no task: it goes to the dispatcher with a callback, and only
an item whose first attempt failed gets a task, which runs the retry/fallback walk with
``invoke`` = "run on a worker" (so backoff sleeps happen here, never on a worker). Cache
lookups, stores and rate-limit slots all happen in the caller: they are global.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Iterator
from functools import partial
from typing import Any

from opero.concurrency.attempts import Outcome
from opero.concurrency.dispatch import Dispatcher
from opero.core.cache import MISS, CacheLayer
from opero.core.pipeline import Pipeline
from opero.core.singleflight import Flight

__all__ = ["MapDriver", "MapSpec", "Result"]

Result = tuple[int, bool, Any]  # (index, ok, value or exception)


class MapSpec:
    """What a decorated map function decided at decoration time."""

    def __init__(
        self,
        fn: Callable[..., Any],
        pipeline: Pipeline,
        layer: CacheLayer | None,
        *,
        kind: str,
        workers: int,
        ordered: bool,
        bound: int,
        batch_max: int,
    ) -> None:
        self.fn = fn
        self.pipeline = pipeline
        self.layer = layer
        self.kind = kind  # "tasks" (async fn on the loop), "thread" or "process"
        self.workers = workers
        self.ordered = ordered
        self.bound = bound
        self.batch_max = batch_max
        self.name = pipeline.name


class MapDriver:
    """One call of a map: feeds items, drives pipelines, yields results in chunks."""

    def __init__(
        self,
        spec: MapSpec,
        items: Iterable[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.spec = spec
        self.items: Iterator[Any] = iter(items)
        self.args = args
        self.kwargs = kwargs
        self.pipeline = spec.pipeline
        self.layer = spec.layer
        self.done: deque[Result] = deque()
        self.wake: asyncio.Event | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        #: flights this map leads through the task-free first attempt (abandoned on abort)
        self.leading: dict[Hashable, Flight] = {}
        self.dispatcher: Dispatcher | None = None
        if spec.kind != "tasks":
            self.dispatcher = Dispatcher(
                spec.fn,
                spec.kind,
                spec.workers,
                timeout=spec.pipeline.timeout,
                batch_max=spec.batch_max,
                name=spec.name,
            )
        # first attempts may skip the per-item task
        self.first_fast = self.dispatcher is not None and spec.pipeline.direct_first
        self.invoke = self.dispatcher.invoke if self.dispatcher is not None else None

    # ----- the stream ----------------------------------------------------------------------
    async def stream(self) -> AsyncIterator[list[Result]]:
        """Chunks of results, in input order (``ordered``) or completion order."""
        self.wake = asyncio.Event()
        spec = self.spec
        bound = spec.bound
        ordered = spec.ordered
        held: dict[int, Result] = {}
        next_out = 0
        index = 0
        in_flight = 0
        exhausted = False
        aborted = True
        try:
            while True:
                while not exhausted and in_flight < bound:
                    try:
                        item = next(self.items)
                    except StopIteration:
                        exhausted = True
                        break
                    in_flight += 1
                    self._start(index, item)
                    index += 1
                chunk: list[Result] = []
                done = self.done
                while done:
                    result = done.popleft()
                    if ordered:
                        held[result[0]] = result
                        while next_out in held:
                            chunk.append(held.pop(next_out))
                            next_out += 1
                    else:
                        chunk.append(result)
                if chunk:
                    in_flight -= len(chunk)
                    yield chunk
                    continue
                if exhausted and in_flight == 0:
                    break
                if not self.done:
                    self.wake.clear()
                    await self.wake.wait()
            aborted = False
        finally:
            await self._close(abort=aborted)

    async def _close(self, *, abort: bool) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.dispatcher is not None:
            await self.dispatcher.close(abort=abort)
        if self.leading and self.layer is not None:
            stopped = asyncio.CancelledError()
            for key, flight in list(self.leading.items()):
                self.layer.flights.fail(key, flight, stopped)  # a waiter elsewhere takes over
            self.leading.clear()

    def _finish(self, index: int, ok: bool, value: Any) -> None:
        self.done.append((index, ok, value))
        wake = self.wake
        if wake is not None:
            wake.set()

    # ----- one item ------------------------------------------------------------------------
    def _start(self, index: int, item: Any) -> None:
        call_args = (item, *self.args)
        kwargs = self.kwargs
        key: Hashable | None = None
        layer = self.layer
        if layer is not None:
            key = layer.key(call_args, kwargs)
            if key is not None:
                value = layer.get(key)
                if value is not MISS:
                    self._finish(index, True, value)
                    return
        if self.first_fast:
            flight: Flight | None = None
            if key is not None:
                assert layer is not None
                flight, leader = layer.flights.join(key)
                if not leader:
                    self._spawn(self._follow(index, key, call_args, flight))
                    return
            if flight is not None:
                self.leading[key] = flight
            assert self.dispatcher is not None
            self.dispatcher.submit(
                call_args, kwargs, partial(self._first_done, index, key, flight, call_args)
            )
            return
        self._spawn(self._item(index, key, call_args))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _first_done(
        self,
        index: int,
        key: Hashable | None,
        flight: Flight | None,
        call_args: tuple[Any, ...],
        outcome: Outcome,
    ) -> None:
        ok, value, _tb = outcome
        if ok:
            if key is not None:
                assert self.layer is not None and flight is not None
                self.layer.put(key, value, call_args)
                self.layer.flights.succeed(key, flight, value)
                self.leading.pop(key, None)
            self._finish(index, True, value)
            return
        self._spawn(self._retry(index, key, flight, call_args, value))

    async def _retry(
        self,
        index: int,
        key: Hashable | None,
        flight: Flight | None,
        call_args: tuple[Any, ...],
        failure: BaseException,
    ) -> None:
        """The rest of an item's pipeline after its first attempt failed."""
        layer = self.layer
        try:
            value = await self.pipeline.run_async(call_args, self.kwargs, failure, self.invoke)
        except BaseException as exc:
            if key is not None and flight is not None:
                assert layer is not None
                self.leading.pop(key, None)
                layer.flights.fail(key, flight, exc)
            if not isinstance(exc, Exception):
                raise
            self._finish(index, False, exc)
            return
        if key is not None and flight is not None:
            assert layer is not None
            self.leading.pop(key, None)
            layer.put(key, value, call_args)
            layer.flights.succeed(key, flight, value)
        self._finish(index, True, value)

    async def _follow(
        self, index: int, key: Hashable, call_args: tuple[Any, ...], flight: Flight
    ) -> None:
        """An item whose key another caller is computing: wait, or take over."""
        assert self.layer is not None
        await self.layer.flights.wait_async(flight)
        if not flight.abandoned:
            if flight.error is not None:
                self._finish(index, False, flight.error)
            else:
                self._finish(index, True, flight.value)
            return
        await self._item(index, key, call_args)

    async def _item(self, index: int, key: Hashable | None, call_args: tuple[Any, ...]) -> None:
        """The whole pipeline of one item, as a task."""
        pipeline = self.pipeline
        layer = self.layer
        kwargs = self.kwargs
        invoke = self.invoke

        async def run(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            return await pipeline.run_async(a, k, None, invoke)

        try:
            if layer is not None and key is not None:
                value = await layer.fill_async(key, run, call_args, kwargs)
            else:
                value = await run(call_args, kwargs)
        except Exception as exc:
            self._finish(index, False, exc)
        else:
            self._finish(index, True, value)
