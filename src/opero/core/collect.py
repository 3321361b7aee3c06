"""A generator function in a map: each item's result is the list of its items.

:func:`collected` makes the function a map runs from a generator or async-generator
function: an attempt runs the whole stream and gives the list (an async generator function
gives a coroutine function, so the map is async). Nothing of an item is handed out before its
stream has ended, so a stream that fails midway is retried whole. A list longer than
``cache_stream_max`` comes back as :class:`Unkept`, a list the cache does not store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["Unkept", "collected"]


class Unkept(list[Any]):
    """The items of a stream longer than ``cache_stream_max``: a list, never cached."""

    __slots__ = ()


def collected(fn: Callable[..., Any], kind: str, most: int) -> Callable[..., Any]:
    """``fn`` (a generator function of ``kind`` "sync" or "async") returning its items as a
    list; name, docstring and signature kept (``__wrapped__`` is ``fn``)."""
    if kind == "async":

        @functools.wraps(fn)
        async def collect_async(*args: Any, **kwargs: Any) -> list[Any]:
            items = [item async for item in fn(*args, **kwargs)]
            return items if len(items) <= most else Unkept(items)

        return collect_async

    @functools.wraps(fn)
    def collect(*args: Any, **kwargs: Any) -> list[Any]:
        items = list(fn(*args, **kwargs))
        return items if len(items) <= most else Unkept(items)

    return collect
