"""The stream driver for async-generator functions (:mod:`opero.core.stream` is the sync
one, and says what a stream's attempts are): the attempts until the first item, awaited in
the caller's task, ``timeout`` and the deadline applied with ``asyncio.timeout`` (a cut
attempt is really cancelled), the concurrency slots held until the stream ends or is
closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from opero.core.admit import admit_async
from opero.core.clock import CLOCK
from opero.core.deadline import scope
from opero.core.stream import END, deadline_of, release
from opero.core.timeout import timeout_error

if TYPE_CHECKING:
    from opero.core.call import Call
    from opero.core.judge import Judge
    from opero.limits.running import RunningLimit

__all__ = ["stream_async"]


async def _take(judge: Judge, call: Call, slots: RunningLimit, held: list[RunningLimit]) -> None:
    started = CLOCK.monotonic()
    if call.deadline is None:
        await slots.acquire_async()
    elif not await slots.acquire_async(judge.time_left(call)):
        raise judge.expired(call)
    held.append(slots)
    waited = CLOCK.monotonic() - started
    judge.waited(waited)
    judge.slept("concurrency", waited)


async def _shut(gen: Any) -> None:
    try:
        await gen.aclose()
    except Exception:  # the attempt's own error is the one that counts
        pass


async def _first(judge: Judge, call: Call, gen: AsyncIterator[Any]) -> Any:
    """The first item of ``gen`` (or :data:`END`), cut at ``timeout`` or the deadline."""
    timeout, at = judge.timeout, call.deadline
    if at is None:
        if timeout is None:
            return await anext(gen, END)
        cut = asyncio.timeout(timeout)
        try:
            async with cut:
                return await anext(gen, END)
        except TimeoutError as exc:
            if cut.expired():
                raise timeout_error(judge.name, timeout) from exc
            raise
    left = at - CLOCK.monotonic()
    by_deadline = timeout is None or timeout > left
    cut = asyncio.timeout(left if by_deadline else timeout)
    try:
        with scope(at):
            async with cut:
                return await anext(gen, END)
    except TimeoutError as exc:
        if cut.expired():
            raise timeout_error(judge.name, timeout or 0, deadline=by_deadline) from exc
        raise


async def _attempt(judge: Judge, call: Call, held: list[RunningLimit]) -> tuple[bool, Any, Any]:
    """One attempt: ``(ok, first item or exception, generator or None)``."""
    try:
        if judge.slots is not None:
            await _take(judge, call, judge.slots, held)
        while (wait := judge.gate(call)) > 0:
            await CLOCK.async_sleep(wait)
            judge.slept("pause", wait)
        if judge.shared and (more := judge.value_slots(call)) is not None:
            await _take(judge, call, more, held)
        await admit_async(judge, call)
    except BaseException:
        release(held)
        raise
    judge.started(call)
    gen = None
    try:
        args, kwargs = call.attempt_args()
        gen = judge.func(*args, **kwargs)
        first = await _first(judge, call, gen)
    except BaseException as exc:
        release(held)
        if gen is not None:
            await _shut(gen)
        return False, exc, None
    if first is END:
        release(held)
        return True, [], None  # judged as no items
    return True, first, gen


async def _open(judge: Judge, call: Call, held: list[RunningLimit]) -> tuple[Any, Any]:
    """Attempts until the judge accepts one: ``(generator or None, first item)``."""
    gen = None
    try:
        ok, value, gen = await _attempt(judge, call, held)
        while True:
            wait = judge.settle(call, ok, value)
            if wait is None:
                return gen, value
            if gen is not None:  # a first item the judge rejected (retry_on_result)
                release(held)
                await _shut(gen)
            if wait > 0:
                await CLOCK.async_sleep(wait)
                judge.slept("backoff", wait)
            gen = None
            ok, value, gen = await _attempt(judge, call, held)
    except BaseException as exc:
        release(held)
        if gen is not None:
            await _shut(gen)
        if isinstance(exc, Exception):
            judge.gave_up(call, exc)
        raise


async def stream_async(
    judge: Judge, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> AsyncGenerator[Any, None]:
    """The items of one call of the async-generator function ``judge.func``."""
    call = judge.call(args, kwargs, deadline=deadline_of(judge))
    held: list[RunningLimit] = []
    gen, first = await _open(judge, call, held)
    if gen is None:
        return
    try:
        yield first
        at = call.deadline
        if at is None:
            async for item in gen:
                yield item
            return
        while True:
            left = at - CLOCK.monotonic()
            if left <= 0:
                raise judge.expired(call)
            cut = asyncio.timeout(left)
            try:
                with scope(at):
                    async with cut:
                        item = await anext(gen, END)
            except TimeoutError as exc:
                if cut.expired():
                    raise judge.expired(call) from exc
                raise
            if item is END:
                return
            yield item
    finally:
        try:
            release(held)
        finally:
            await gen.aclose()
