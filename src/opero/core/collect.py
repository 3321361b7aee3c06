"""A generator function in a map: each item's result is the list of its items.

:func:`collected` makes the callable a map runs from a generator or async-generator
function: an attempt runs the whole stream and gives the list (for an async generator
function an ``async def __call__``, so the map is async). Nothing of an item is handed out
before its stream has ended, so a stream that fails midway is retried whole. A list longer
than ``cache_stream_max`` comes back as :class:`Unkept`, a list the cache does not store.

Worker processes receive a collector by the name of its function (the module attribute may
be the map wrapper, whose target is the collector itself), or whole if it has no name there.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["Collect", "CollectAsync", "Unkept", "collected"]


class Unkept(list[Any]):
    """The items of a stream longer than ``cache_stream_max``: a list, never cached."""

    __slots__ = ()


class Collect:
    """A generator function's items as a list (the function's name, docstring and signature)."""

    def __init__(self, fn: Callable[..., Any], most: int) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.most = most

    def keep(self, items: list[Any]) -> list[Any]:
        return items if len(items) <= self.most else Unkept(items)

    def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self.keep(list(self.fn(*args, **kwargs)))

    def __reduce__(self) -> tuple[Any, ...]:
        fn = self.fn
        name = getattr(fn, "__qualname__", "")
        if "<locals>" in name or "<lambda>" in name or not hasattr(fn, "__module__"):
            return (type(self), (fn, self.most))
        return (_by_name, (fn.__module__, name, type(self), self.most))


class CollectAsync(Collect):
    """An async generator function's items as a list."""

    async def __call__(self, *args: Any, **kwargs: Any) -> list[Any]:  # type: ignore[override]
        return self.keep([item async for item in self.fn(*args, **kwargs)])


def _by_name(module: str, qualname: str, kind: type[Collect], most: int) -> Collect:
    """The collector of the generator function named so (in a worker process)."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    target = getattr(obj, "__opero_map_target__", None)  # decorated where it is defined
    if isinstance(target, Collect):
        return target
    return kind(obj, most)


def collected(fn: Callable[..., Any], kind: str, most: int) -> Collect:
    """The collector of ``fn``, a generator function of ``kind`` "sync" or "async"."""
    return CollectAsync(fn, most) if kind == "async" else Collect(fn, most)
