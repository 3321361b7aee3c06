"""Feeding a process map in bulk: items read in slices, cache lookups answered at once, and
the misses sent to the transport as jobs of several attempts with one callback each.

With no cache the items travel as they are (no per-item step at all). With a cache, the
misses of one feeding round join their flights under one lock; a key that someone else is
computing is followed instead. A job's failed attempts go on as per-item retry tasks
(:class:`~opero.maps.items.ItemPaths`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from opero.cache.memory import MemoryStore
from opero.cache.store import KWD_MARK, MISS
from opero.maps.misses import Misses, MissJob, all_missed
from opero.maps.stop import Stopped

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.cache.singleflight import Flight
    from opero.core.judge import Judge
    from opero.maps.completion import Completion
    from opero.maps.items import ItemPaths
    from opero.maps.records import Args, Failures, Kwargs, Rows
    from opero.maps.transport import Transport

__all__ = ["BulkFeed"]


class BulkFeed:
    """Items read, looked up and sent in bulk, for one map call."""

    def __init__(
        self,
        completion: Completion,
        layer: CacheLayer | None,
        transport: Transport,
        items: Iterator[object],
        args: Args,
        kwargs: Kwargs,
        judge: Judge,
        paths: ItemPaths,
    ) -> None:
        self.judge = judge
        self.counters = judge.counters
        self.completion = completion
        self.layer = layer
        self.transport = transport
        self.items = items
        self.args = args
        self.kwargs = kwargs
        self.pending = Misses()
        self.open_jobs: set[MissJob] = set()
        #: the per-item paths: failed first attempts are judged there, follows wait there
        self.paths = paths

    def feed(self, index: int, room: int) -> int:
        """Read up to ``room`` items and send them as jobs; return how many were read."""
        items = list(islice(self.items, room))
        extra = self.args
        if items and self.layer is not None:
            rows: list[Args] = (
                [(item, *extra) for item in items] if extra else [(item,) for item in items]
            )
            self._lookup(index, rows)
        elif items:
            self._send_uncached(index, items)
        return len(items)

    def _send_uncached(self, index: int, items: list[object]) -> None:
        """Items of a map without a cache: their first attempts go as they are."""
        extra = self.args
        bare = not extra  # the item alone: no argument tuple to build or send
        rows: Rows = items if bare else [(item, *extra) for item in items]
        self.judge.plain_started(len(rows))
        transport = self.transport
        kwargs = self.kwargs
        for start, end in transport.spans(len(rows)):
            part = rows[start:end]
            transport.submit_job(
                part,
                kwargs,
                partial(self._uncached_done, index + start, part, bare),
                bare=bare,
                fresh=True,
            )

    def _lookup(self, index: int, rows: list[Args]) -> None:
        """Answer cached rows at once; queue the misses (as ItemPaths.start does, in bulk)."""
        layer = self.layer
        assert layer is not None
        if layer.fast and layer.on_hit is None and isinstance(layer.store, MemoryStore):
            self._lookup_memory(index, rows, layer.store)
            return
        for n, row in enumerate(rows):
            self._lookup_row(index + n, row)

    def _lookup_row(self, index: int, row: Args) -> None:
        """One row through the layer's own key and lookup."""
        layer = self.layer
        assert layer is not None
        key = layer.key(row, self.kwargs)
        if key is not None:
            value = layer.get(key)
            if value is not MISS:
                self.counters.hits += 1
                self.completion.done.append((index, [value], None))
                return
        self.pending.add(index, key, row)

    def _lookup_memory(self, index: int, rows: list[Args], store: MemoryStore) -> None:
        """The memory store read directly: the row itself is its key (hashable arguments)."""
        done, pending, counters = self.completion.done, self.pending, self.counters
        lookup, touch = store.data.get, store.data.move_to_end
        now = store.timer()
        tail = (KWD_MARK, *self.kwargs.items()) if self.kwargs else ()
        if not tail and all_missed(rows, lookup):  # (C-level loops)
            pending.extend(index, rows)
            return
        for n, row in enumerate(rows):
            key: Hashable = (*row, *tail) if tail else row
            try:
                entry = lookup(key)
            except Exception:  # unhashable (or a raising __hash__): the slow key
                self._lookup_row(index + n, row)
                continue
            if entry is not None and entry[0] > now:
                try:
                    touch(key)
                except KeyError:
                    pass
                counters.hits += 1
                done.append((index + n, [entry[1]], None))
                continue
            pending.add(index + n, key, row)

    def _uncached_done(
        self, first: int, rows: Rows, bare: bool, values: list[object], failures: Failures
    ) -> None:
        done = self.completion.done
        if not failures:
            done.append((first, values, None))
        else:
            for n, value in enumerate(values):
                failure = failures.get(n)
                if failure is None:
                    done.append((first + n, [value], None))
                else:
                    args = (rows[n],) if bare else rows[n]
                    self._failed(first + n, None, None, args, failure[0])
        self.completion.notify()

    def submit_pending(self) -> None:
        """Send the misses gathered by this feeding round as jobs (the transport merges
        queued jobs into larger batches when many are waiting)."""
        misses, self.pending = self.pending, Misses()
        flights: list[Flight | None]
        if self.layer is None:
            flights = [None] * len(misses.indices)
        else:
            misses, flights = self._lead(misses, self.layer)
        count = len(misses.indices)
        self.judge.plain_started(count)
        for start, end in self.transport.spans(count):
            self._send(MissJob(self, misses.part(start, end), flights[start:end]))

    def _lead(self, misses: Misses, layer: CacheLayer) -> tuple[Misses, list[Flight | None]]:
        """Join the misses' flights under one lock; a key that someone else is computing is
        followed instead: the misses this map leads, and their flights."""
        flights, followers = layer.flights.join_many(misses.keys)
        self.counters.entered += len(followers)
        if not followers:
            return misses, flights
        for n in followers:
            key, follow = misses.keys[n], flights[n]
            assert key is not None and follow is not None
            self.completion.spawn(self.paths.follow(misses.indices[n], key, misses.rows[n], follow))
        skip = set(followers)
        keep = [n for n in range(len(flights)) if n not in skip]
        return misses.only(keep), [flights[n] for n in keep]

    def _send(self, job: MissJob) -> None:
        self.open_jobs.add(job)
        rows = job.misses.rows
        if self.args:
            self.transport.submit_job(rows, self.kwargs, job.done, bare=False, fresh=True)
        else:  # the item alone travels: no argument tuple to pickle
            items = [row[0] for row in rows]
            self.transport.submit_job(items, self.kwargs, job.done, bare=True, fresh=True)

    def job_done(self, job: MissJob, values: list[object], failures: Failures) -> None:
        self.open_jobs.discard(job)
        layer = self.layer
        done = self.completion.done
        misses, flights = job.misses, job.flights
        indices, keys, rows = misses.indices, misses.keys, misses.rows
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
                    self._failed(index, keys[n], flights[n], rows[n], failure[0])
                    continue
                self.paths.store(keys[n], flights[n], values[n], rows[n])
                done.append((index, [values[n]], None))
        self.completion.notify()

    def _failed(
        self,
        index: int,
        key: Hashable | None,
        flight: Flight | None,
        row: Args,
        exc: BaseException,
    ) -> None:
        """A failed first attempt goes on in the item's retry walk, where the judge settles
        it; an item withdrawn from the queue when the map stopped was never started."""
        stop = self.completion.stop
        if stop is None or not isinstance(exc, Stopped):
            self.completion.spawn(self.paths.retry(index, key, flight, row, exc))
            return
        if key is not None and flight is not None:
            assert self.layer is not None
            self.layer.flights.fail(key, flight, exc)  # abandoned: a waiter takes over
        self.completion.refuse(index, stop.error())

    def abandon(self, error: BaseException) -> None:
        """The map stopped: fail the flights of jobs still out (a waiter elsewhere takes over)."""
        if self.layer is None:
            self.open_jobs.clear()
            return
        flights = self.layer.flights
        for job in list(self.open_jobs):
            for job_key, job_flight in zip(job.misses.keys, job.flights, strict=True):
                if job_key is not None and job_flight is not None:
                    flights.fail(job_key, job_flight, error)
        self.open_jobs.clear()
