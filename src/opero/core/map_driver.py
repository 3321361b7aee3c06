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
from itertools import islice
from typing import Any

from opero.concurrency.attempts import Outcome
from opero.concurrency.dispatch import Dispatcher
from opero.concurrency.executors import ExecutorHandle
from opero.core.cache import KWD_MARK, MISS, CacheLayer, MemoryStore
from opero.core.pipeline import Pipeline
from opero.core.singleflight import Flight

__all__ = ["JOB", "MapDriver", "MapSpec", "Run"]

JOB = 8  #: attempts per job before the dispatcher has measured any

#: a run of consecutive results: (first index, values, positions that hold an exception)
Run = tuple[int, list[Any], frozenset[int] | None]
FAILED = frozenset({0})  # the one value of a single-item run is an exception


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
        handle_factory: Callable[[], ExecutorHandle] | None = None,
    ) -> None:
        self.fn = fn
        self.handle_factory = handle_factory  # executor kind: a new handle per map call
        self.pipeline = pipeline
        self.layer = layer
        self.kind = kind  # "tasks" (async fn on the loop), "thread", "process" or "executor"
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
        self.done: deque[Run] = deque()
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
                handle=spec.handle_factory() if spec.handle_factory is not None else None,
            )
        # first attempts may skip the per-item task ...
        self.first_fast = self.dispatcher is not None and spec.pipeline.direct_first
        # ... and, for processes, travel in jobs of several items with one callback
        self.jobs = self.first_fast and spec.kind in ("process", "executor")
        # ... read in bulk: with no cache, with no per-item step at all
        self.bulk = self.jobs
        self.pending = _Misses()
        self.open_jobs: set[_MissJob] = set()
        self.invoke = self.dispatcher.invoke if self.dispatcher is not None else None

    # ----- the stream ----------------------------------------------------------------------
    async def stream(self) -> AsyncIterator[list[Run]]:
        """Chunks of result runs, in input order (``ordered``) or completion order."""
        self.wake = asyncio.Event()
        spec = self.spec
        bound = spec.bound
        ordered = spec.ordered
        held: dict[int, Run] = {}
        next_out = 0
        index = 0
        in_flight = 0
        exhausted = False
        aborted = True
        try:
            while True:
                if self.bulk and not exhausted and in_flight < bound:
                    room = bound - in_flight
                    fed = self._feed_bulk(index, room)
                    exhausted = fed < room
                    in_flight += fed
                    index += fed
                while not exhausted and in_flight < bound:
                    try:
                        item = next(self.items)
                    except StopIteration:
                        exhausted = True
                        break
                    in_flight += 1
                    self._start(index, item)
                    index += 1
                if self.pending:
                    self._submit_pending()
                chunk: list[Run] = []
                done = self.done
                if ordered:
                    while done:
                        run = done.popleft()
                        if run[0] == next_out:
                            chunk.append(run)
                            next_out += len(run[1])
                            while held and next_out in held:
                                run = held.pop(next_out)
                                chunk.append(run)
                                next_out += len(run[1])
                        else:
                            held[run[0]] = run
                else:
                    chunk.extend(done)
                    done.clear()
                if chunk:
                    in_flight -= sum(len(run[1]) for run in chunk)
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

    def _feed_bulk(self, index: int, room: int) -> int:
        """Read up to ``room`` items and send them as jobs; return how many were read."""
        items = list(islice(self.items, room))
        if not items:
            return 0
        extra = self.args
        if self.layer is not None:
            rows = [(item, *extra) for item in items] if extra else [(item,) for item in items]
            self._lookup_bulk(index, rows)
            return len(items)
        single = not extra  # the item alone: no argument tuple to build or send
        rows = items if single else [(item, *extra) for item in items]
        dispatcher = self.dispatcher
        assert dispatcher is not None
        size = dispatcher.job_size(len(rows))
        kwargs = self.kwargs
        for start in range(0, len(rows), size):
            part = rows[start : start + size]
            dispatcher.submit_job(
                part, kwargs, partial(self._bulk_done, index + start, part, single), single=single
            )
        return len(items)

    def _lookup_bulk(self, index: int, rows: list[tuple[Any, ...]]) -> None:
        """Answer cached rows at once; queue the misses (as :meth:`_start` does, in bulk)."""
        layer = self.layer
        assert layer is not None
        done = self.done
        pending = self.pending
        kwargs = self.kwargs
        store = layer.store
        if layer.fast and layer.on_hit is None and isinstance(store, MemoryStore):
            data = store.data
            lookup, touch = data.get, data.move_to_end
            now = store.timer()
            tail = (KWD_MARK, *kwargs.items()) if kwargs else ()
            for n, row in enumerate(rows):
                key: Hashable | None = (*row, *tail) if tail else row
                try:
                    entry = lookup(key)
                except TypeError:  # unhashable: the stable encoding
                    key = layer.key(row, kwargs)
                    entry = None
                    if key is not None:
                        value = layer.get(key)
                        if value is not MISS:
                            done.append((index + n, [value], None))
                            continue
                if entry is not None and entry[0] > now:
                    try:
                        touch(key)
                    except KeyError:
                        pass
                    done.append((index + n, [entry[1]], None))
                    continue
                pending.add(index + n, key, row)
            return
        for n, row in enumerate(rows):
            key = layer.key(row, kwargs)
            if key is not None:
                value = layer.get(key)
                if value is not MISS:
                    done.append((index + n, [value], None))
                    continue
            pending.add(index + n, key, row)

    def _bulk_done(
        self,
        first: int,
        rows: list[Any],
        single: bool,
        values: list[Any],
        failures: dict[int, tuple[BaseException, str | None]],
    ) -> None:
        done = self.done
        if not failures:
            done.append((first, values, None))
        else:
            for n, value in enumerate(values):
                failure = failures.get(n)
                if failure is None:
                    done.append((first + n, [value], None))
                else:
                    args = (rows[n],) if single else rows[n]
                    self._spawn(self._retry(first + n, None, None, args, failure[0]))
        wake = self.wake
        if wake is not None:
            wake.set()

    async def _close(self, *, abort: bool) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.dispatcher is not None:
            await self.dispatcher.close(abort=abort)
            if self.dispatcher.handle is not None:
                await self.dispatcher.handle.close()
        if self.layer is not None and (self.leading or self.open_jobs):
            stopped = asyncio.CancelledError()
            flights = self.layer.flights
            for key, flight in list(self.leading.items()):
                flights.fail(key, flight, stopped)  # a waiter elsewhere takes over
            self.leading.clear()
            for job in list(self.open_jobs):
                for job_key, job_flight in zip(job.keys, job.flights, strict=True):
                    if job_key is not None and job_flight is not None:
                        flights.fail(job_key, job_flight, stopped)
            self.open_jobs.clear()

    def _finish(self, index: int, ok: bool, value: Any) -> None:
        self.done.append((index, [value], None if ok else FAILED))
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
        if self.jobs:
            self.pending.add(index, key, call_args)  # flights joined per round
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

    def _submit_pending(self) -> None:
        """Send the misses gathered by this feeding round as jobs (the dispatcher merges
        queued jobs into larger batches when many are waiting). Their flights are joined
        under one lock; a key that someone else is computing is followed instead."""
        misses, self.pending = self.pending, _Misses()
        indices, keys, rows = misses.indices, misses.keys, misses.rows
        flights: list[Flight | None] = [None] * len(indices)
        layer = self.layer
        if layer is not None:
            flights, followers = layer.flights.join_many(keys)
            if followers:
                skip = set(followers)
                for n in followers:
                    key, follow = keys[n], flights[n]
                    assert key is not None and follow is not None
                    self._spawn(self._follow(indices[n], key, rows[n], follow))
                keep = [n for n in range(len(indices)) if n not in skip]
                indices = [indices[n] for n in keep]
                keys = [keys[n] for n in keep]
                rows = [rows[n] for n in keep]
                flights = [flights[n] for n in keep]
        kwargs = self.kwargs
        dispatcher = self.dispatcher
        assert dispatcher is not None
        size = dispatcher.job_size(len(indices))
        for start in range(0, len(indices), size):
            end = start + size
            job = _MissJob(
                self, indices[start:end], keys[start:end], flights[start:end], rows[start:end]
            )
            self.open_jobs.add(job)
            dispatcher.submit_job(job.rows, kwargs, job.done)

    def _job_done(
        self,
        job: _MissJob,
        values: list[Any],
        failures: dict[int, tuple[BaseException, str | None]],
    ) -> None:
        self.open_jobs.discard(job)
        layer = self.layer
        done = self.done
        indices, keys, flights, rows = job.indices, job.keys, job.flights, job.rows
        if not failures:
            if layer is not None:
                layer.put_many(keys, values, rows)
                layer.flights.succeed_many(keys, flights, values)
            if indices[-1] - indices[0] == len(indices) - 1:
                done.append((indices[0], values, None))  # consecutive: one run
            else:
                for index, value in zip(indices, values, strict=True):
                    done.append((index, [value], None))
        else:
            for n, index in enumerate(indices):
                failure = failures.get(n)
                if failure is not None:
                    self._spawn(self._retry(index, keys[n], flights[n], rows[n], failure[0]))
                    continue
                self._store(keys[n], flights[n], values[n], rows[n])
                done.append((index, [values[n]], None))
        wake = self.wake
        if wake is not None:
            wake.set()

    def _store(
        self, key: Hashable | None, flight: Flight | None, value: Any, args: tuple[Any, ...]
    ) -> None:
        """A computed value: cache it, wake the callers waiting on its flight."""
        if key is None or flight is None:
            return
        assert self.layer is not None
        self.leading.pop(key, None)
        self.layer.put(key, value, args)
        self.layer.flights.succeed(key, flight, value)

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
            self._store(key, flight, value, call_args)
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
        self._store(key, flight, value, call_args)
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


class _Misses:
    """Cache misses gathered in one feeding round, as parallel lists."""

    __slots__ = ("indices", "keys", "rows")

    def __init__(self) -> None:
        self.indices: list[int] = []
        self.keys: list[Hashable | None] = []
        self.rows: list[tuple[Any, ...]] = []

    def add(self, index: int, key: Hashable | None, row: tuple[Any, ...]) -> None:
        self.indices.append(index)
        self.keys.append(key)
        self.rows.append(row)

    def __bool__(self) -> bool:
        return bool(self.indices)


class _MissJob:
    """First attempts of some missed items, sent to the process dispatcher as one job."""

    __slots__ = ("driver", "flights", "indices", "keys", "rows")

    def __init__(
        self,
        driver: MapDriver,
        indices: list[int],
        keys: list[Hashable | None],
        flights: list[Flight | None],
        rows: list[tuple[Any, ...]],
    ) -> None:
        self.driver = driver
        self.indices = indices
        self.keys = keys
        self.flights = flights
        self.rows = rows

    def done(
        self, values: list[Any], failures: dict[int, tuple[BaseException, str | None]]
    ) -> None:
        self.driver._job_done(self, values, failures)
