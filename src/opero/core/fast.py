"""The fast paths of a plain call (:attr:`opero.core.judge.Judge.plain`): the first attempt
is made at once, with one counter bump; a success is returned as it is, and every other
outcome (a failure, an awaitable from a function that looked sync) goes to the judge through
the driver, exactly as if the driver had made that attempt. While a pause runs, calls take
the driver from the start.

``entry`` variants are the whole uncached call (``f(*args, **kwargs)``, one frame);
``core`` variants run the attempts of a call that missed the cache. An entry given a
``twin`` (the same function with telemetry on) hands each call to it while
:func:`opero.telemetry.enable` is in effect (looked at only once :data:`AMBIENT` is on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opero.core.call import Args, Kwargs
from opero.core.callables import CoroutineType
from opero.core.deadline import AMBIENT, DEADLINE
from opero.core.drive import drive, drive_async, invoker, invoker_async
from opero.core.judge import Judge

__all__ = ["core_async", "core_sync", "entry_async", "entry_sync"]

Core = Callable[[Args, Kwargs], Any]


def entry_sync(judge: Judge, twin: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """The uncached sync call: counts itself (calls past the cache are counted here)."""
    c, pauses, call_of = judge.counters, judge.pauses, judge.call
    invoke = invoker(judge)
    ambient = AMBIENT
    if not judge.plain or judge.timeout is not None:

        def call(*args: Any, **kwargs: Any) -> Any:
            if ambient.traced and twin is not None:
                return twin(*args, **kwargs)
            c.entered += 1
            return drive(judge, call_of(args, kwargs), invoke)

        return call
    fn, deadline = judge.func, DEADLINE.get
    watched = twin is not None

    def call_direct(*args: Any, **kwargs: Any) -> Any:
        # a server asked every caller to wait, the call has a time budget, or is traced
        if pauses.active or (
            ambient.on and ((watched and ambient.traced) or deadline() is not None)
        ):
            if watched and ambient.traced:
                return twin(*args, **kwargs)  # type: ignore[misc]
            c.entered += 1
            return drive(judge, call_of(args, kwargs), invoke)
        c.direct += 1
        try:  # (without keywords, no empty dict is unpacked: the commonest call is cheaper)
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except BaseException as exc:
            return drive(judge, call_of(args, kwargs, plain=True), invoke, (False, exc))
        if type(result) is CoroutineType:  # looked sync, returned a coroutine: judged
            return drive(judge, call_of(args, kwargs, plain=True), invoke, (True, result))
        return result

    return call_direct


def core_sync(judge: Judge) -> Core:
    """The attempts of a sync call that missed the cache (the call is counted by the cache)."""
    c, pauses, call_of = judge.counters, judge.pauses, judge.call
    invoke = invoker(judge)
    if not judge.plain:
        return lambda args, kwargs: drive(judge, call_of(args, kwargs), invoke)
    ambient, deadline = AMBIENT, DEADLINE.get

    def core(args: Args, kwargs: Kwargs) -> Any:
        if pauses.active or (ambient.on and deadline() is not None):
            return drive(judge, call_of(args, kwargs), invoke)
        c.attempts += 1
        try:
            result = invoke(args, kwargs)
        except BaseException as exc:
            return drive(judge, call_of(args, kwargs), invoke, (False, exc))
        if type(result) is CoroutineType:
            return drive(judge, call_of(args, kwargs), invoke, (True, result))
        c.plain_ok += 1
        return result

    return core


def entry_async(judge: Judge, twin: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """The uncached async call."""
    c, pauses, call_of = judge.counters, judge.pauses, judge.call
    invoke = invoker_async(judge)
    ambient = AMBIENT
    if not judge.plain or judge.timeout is not None:

        async def call(*args: Any, **kwargs: Any) -> Any:
            if ambient.traced and twin is not None:
                return await twin(*args, **kwargs)
            c.entered += 1
            return await drive_async(judge, call_of(args, kwargs), invoke)

        return call
    fn, deadline = judge.func, DEADLINE.get
    watched = twin is not None

    async def call_direct(*args: Any, **kwargs: Any) -> Any:
        if pauses.active or (
            ambient.on and ((watched and ambient.traced) or deadline() is not None)
        ):
            if watched and ambient.traced:
                return await twin(*args, **kwargs)  # type: ignore[misc]
            c.entered += 1
            return await drive_async(judge, call_of(args, kwargs), invoke)
        c.direct += 1
        try:
            return await (fn(*args, **kwargs) if kwargs else fn(*args))
        except BaseException as exc:
            first = (False, exc)
        return await drive_async(judge, call_of(args, kwargs, plain=True), invoke, first)

    return call_direct


def core_async(judge: Judge) -> Callable[..., Any]:
    """The attempts of an async call that missed the cache."""
    c, pauses, call_of = judge.counters, judge.pauses, judge.call
    invoke = invoker_async(judge)
    if not judge.plain:

        async def judged(args: Args, kwargs: Kwargs) -> Any:
            return await drive_async(judge, call_of(args, kwargs), invoke)

        return judged
    ambient, deadline = AMBIENT, DEADLINE.get

    async def core(args: Args, kwargs: Kwargs) -> Any:
        if pauses.active or (ambient.on and deadline() is not None):
            return await drive_async(judge, call_of(args, kwargs), invoke)
        c.attempts += 1
        try:
            result = await invoke(args, kwargs)
        except BaseException as exc:
            first = (False, exc)
        else:
            c.plain_ok += 1
            return result
        return await drive_async(judge, call_of(args, kwargs), invoke, first)

    return core
