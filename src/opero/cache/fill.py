"""Filling a missed key: computed once across threads and tasks (single-flight) and, for a
store that other processes share, once across processes (a lease on the store).

A call that misses a key its own computation is leading (a function that calls itself with
the same arguments, in the same thread or task) computes directly: it never waits on itself.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from loguru import logger

from opero.cache.store import MISS

if TYPE_CHECKING:
    from opero.cache.calls import Args, Kwargs, Run, RunAsync
    from opero.cache.layer import CacheLayer
    from opero.cache.singleflight import Flight

__all__ = ["fill", "fill_async"]

#: the flights led by the current thread or task (only set while one computes)
_LEADING: ContextVar[tuple[Flight, ...]] = ContextVar("opero_leading", default=())


def fill(
    layer: CacheLayer,
    key: Hashable,
    run: Run,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    """Compute a missed key once across threads; store and return the value."""
    logger.trace("{}: cache miss", layer.name)
    flights = layer.flights
    while True:
        flight, leader = flights.join(key)
        if not leader:
            if flight in _LEADING.get():  # recursion: this very call leads the flight
                return run(args, kwargs)
            flights.wait(flight)
            if flight.abandoned:
                continue
            return flight.outcome()
        token = _LEADING.set((*_LEADING.get(), flight))
        try:
            value = layer.get(key, quiet=True)  # filled meanwhile: still this call's miss
            if value is MISS and layer.shared:  # other processes may be computing it
                value = compute_shared(layer, key, run, args, kwargs)
            elif value is MISS:
                value = run(args, kwargs)
                layer.put(key, value, args)
        except BaseException as exc:
            flights.fail(key, flight, exc)
            raise
        finally:
            _LEADING.reset(token)
        flights.succeed(key, flight, value)
        return value


async def fill_async(
    layer: CacheLayer,
    key: Hashable,
    run: RunAsync,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    """Compute a missed key once across tasks and threads; store and return the value."""
    logger.trace("{}: cache miss", layer.name)
    flights = layer.flights
    while True:
        flight, leader = flights.join(key)
        if not leader:
            if flight in _LEADING.get():  # recursion: this very task leads the flight
                return await run(args, kwargs)
            await flights.wait_async(flight)
            if flight.abandoned:
                continue
            return flight.outcome()
        token = _LEADING.set((*_LEADING.get(), flight))
        try:
            value = await layer.aget(key, quiet=True)
            if value is MISS and layer.shared:  # other processes may be computing it
                value = await compute_shared_async(layer, key, run, args, kwargs)
            elif value is MISS:
                value = await run(args, kwargs)
                await layer.aput(key, value, args)
        except BaseException as exc:
            flights.fail(key, flight, exc)
            raise
        finally:
            _LEADING.reset(token)
        flights.succeed(key, flight, value)
        return value


def compute_shared(
    layer: CacheLayer,
    key: Hashable,
    run: Run,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    """Compute ``key`` once across processes (a lease on the shared store)."""
    store = layer.shared_store
    assert store is not None
    while True:
        token = store.lease(key)
        if token is not None:
            try:
                value = run(args, kwargs)
                layer.put(key, value, args)
                return value
            finally:
                store.release(key, token)
        value = store.wait(key)  # another process computes it
        if value is not MISS:
            return value


async def compute_shared_async(
    layer: CacheLayer,
    key: Hashable,
    run: RunAsync,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    store = layer.shared_store
    assert store is not None
    while True:
        token = await store.alease(key)
        if token is not None:
            try:
                value = await run(args, kwargs)
                await layer.aput(key, value, args)
                return value
            finally:
                await store.arelease(key, token)
        value = await store.await_value(key)
        if value is not MISS:
            return value
