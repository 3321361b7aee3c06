"""What a decorated callable is and what it returned: async or sync, through wrappers and
callable objects; awaitables returned by a callable that looked sync; streams (iterators),
which are never cached."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from types import CoroutineType
from typing import Any, Literal, NoReturn

__all__ = [
    "CoroutineType",
    "is_async_callable",
    "is_stream",
    "refuse_awaitable",
    "refused",
    "stream_kind",
]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for an ``async def`` function, one marked with ``inspect.markcoroutinefunction``,
    a wrapper whose ``__wrapped__`` chain ends in one, a ``functools.partial`` of one, and an
    object whose ``__call__`` is one."""
    seen = 0
    current: Any = fn
    while current is not None and seen < 100:
        if inspect.iscoroutinefunction(current):
            return True
        if isinstance(current, functools.partial):
            current = current.func
        elif not inspect.isfunction(current) and not inspect.ismethod(current):
            call = getattr(type(current), "__call__", None)  # noqa: B004
            if call is not None and inspect.iscoroutinefunction(call):
                return True
            current = getattr(current, "__wrapped__", None)
        else:
            current = getattr(current, "__wrapped__", None)
        seen += 1
    return False


def refuse_awaitable(name: str, value: Any) -> NoReturn:
    """The callable looked sync but returned an awaitable: fail the call, cache nothing."""
    raise refused(name, value)


def refused(name: str, value: Any) -> TypeError:
    """The error of :func:`refuse_awaitable`, marked final (a worker process makes it, and
    the caller's judge must not retry it: the next attempt would return the same)."""
    if isinstance(value, CoroutineType):
        value.close()  # no "never awaited" warning on top of the error
    error = TypeError(
        f"{name} returned an awaitable ({type(value).__qualname__}) although it looked like a "
        "sync function to opero, so it was wrapped as sync and nothing was cached. Decorate "
        "the `async def` function itself (put @opero on the inner function), or make this "
        "callable `async def`."
    )
    error.__opero_final__ = True  # type: ignore[attr-defined]
    return error


def is_stream(value: Any) -> bool:
    """An iterator, generator or async iterator: consumed once, so never cached."""
    return isinstance(value, Iterator | AsyncIterator)


def stream_kind(fn: object) -> Literal["sync", "async"] | None:
    """``"sync"`` for a generator function, ``"async"`` for an async-generator function
    (methods and ``functools.partial`` of them included), else None: a function that merely
    returns an iterator is not a stream."""
    if inspect.isasyncgenfunction(fn):
        return "async"
    if inspect.isgeneratorfunction(fn):
        return "sync"
    return None
