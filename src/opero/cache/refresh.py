"""Refreshing a key: computed again without reading the cache, then stored as a fill stores
(streams, awaitables and unserializable values are returned but not stored; a store that
fails never fails the call). A refresh that fails stores nothing: the entry before it stays.

A refresh never returns a value computed before it started. It does not join a computation
of the key already running in this process: it waits for that one to end, ignoring its
outcome (so that older value cannot overwrite the refreshed one), then computes as the
leader of a flight of its own, which misses of the key arriving meanwhile join. A refresh
made inside the computation it would wait for (a function refreshing its own key while
computing it) computes directly. With a store other processes share, a refresh takes the
key's lease when it is free, so their misses wait for its value, but never waits for
another process's lease (that wait ends with the older value).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from loguru import logger

from opero.cache.fill import _LEADING

if TYPE_CHECKING:
    from opero.cache.calls import Args, Kwargs, Run, RunAsync
    from opero.cache.layer import CacheLayer
    from opero.cache.singleflight import Flight

__all__ = ["refresh", "refresh_async"]


def refresh(
    layer: CacheLayer,
    key: Hashable,
    run: Run,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    """Compute ``key`` again without reading the cache; store and return the value."""
    logger.debug("{}: cache refresh", layer.name)
    flights = layer.flights
    flight: Flight
    while True:
        flight, leader = flights.join(key)
        if leader:
            break
        if flight in _LEADING.get():  # recursion: this very call leads the running flight
            value = run(args, kwargs)
            layer.put(key, value, args)
            return value
        flights.wait(flight)  # an older computation: let it end, never take its value
    token = _LEADING.set((*_LEADING.get(), flight))
    try:
        if layer.shared:
            value = _shared(layer, key, run, args, kwargs)
        else:
            value = run(args, kwargs)
            layer.put(key, value, args)
    except BaseException as exc:
        flights.fail(key, flight, exc)
        raise
    finally:
        _LEADING.reset(token)
    flights.succeed(key, flight, value)
    return value


async def refresh_async(
    layer: CacheLayer,
    key: Hashable,
    run: RunAsync,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    """Compute ``key`` again without reading the cache, across tasks and threads; store and
    return the value."""
    logger.debug("{}: cache refresh", layer.name)
    flights = layer.flights
    flight: Flight
    while True:
        flight, leader = flights.join(key)
        if leader:
            break
        if flight in _LEADING.get():  # recursion: this very task leads the running flight
            value = await run(args, kwargs)
            await layer.aput(key, value, args)
            return value
        await flights.wait_async(flight)  # an older computation: never take its value
    token = _LEADING.set((*_LEADING.get(), flight))
    try:
        if layer.shared:
            value = await _shared_async(layer, key, run, args, kwargs)
        else:
            value = await run(args, kwargs)
            await layer.aput(key, value, args)
    except BaseException as exc:
        flights.fail(key, flight, exc)
        raise
    finally:
        _LEADING.reset(token)
    flights.succeed(key, flight, value)
    return value


def _shared(
    layer: CacheLayer,
    key: Hashable,
    run: Run,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    """Compute under the key's lease if it is free (other processes' misses then wait for
    this value); without it, and without waiting, if another process holds it."""
    store = layer.shared_store
    assert store is not None
    token = store.lease(key)
    try:
        value = run(args, kwargs)
        layer.put(key, value, args)
        return value
    finally:
        if token is not None:
            store.release(key, token)


async def _shared_async(
    layer: CacheLayer,
    key: Hashable,
    run: RunAsync,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    store = layer.shared_store
    assert store is not None
    token = await store.alease(key)
    try:
        value = await run(args, kwargs)
        await layer.aput(key, value, args)
        return value
    finally:
        if token is not None:
            await store.arelease(key, token)
