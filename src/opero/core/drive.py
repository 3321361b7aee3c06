"""The drivers: one call's attempts, run until the judge says it is over, once sync and once
async. They wait where the judge tells them (a concurrency slot, a pause, a rate-limit admission,
a backoff) and run attempts; they never decide (:mod:`opero.core.judge` does).

``invoke`` runs one attempt: the function itself (under ``timeout``), or, for a map, the
attempt sent to a worker and awaited. ``first`` is the outcome of a first attempt already
made on a fast path. ``workers`` (a map's free workers) is taken after the concurrency slot
and before the rate-limit booking, so a slot is never booked for an attempt that would then
wait for a worker (busy workers never cause a burst when they free up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opero.core.admit import admit, admit_async
from opero.core.call import Args, AsyncInvoke, Call, Invoke, Kwargs, Outcome
from opero.core.clock import CLOCK
from opero.core.deadline import scope
from opero.core.judge import Judge
from opero.core.timeout import call_with_timeout, timeout_error

if TYPE_CHECKING:
    from opero.limits.running import RunningLimit

__all__ = [
    "AsyncInvoke",
    "Invoke",
    "before",
    "before_async",
    "drive",
    "drive_async",
    "invoker",
    "invoker_async",
]

Release = Callable[[], None]


def invoker(judge: Judge) -> Invoke:
    """How a sync attempt runs here: the function, on a helper thread under ``timeout``."""
    func, timeout, name = judge.func, judge.timeout, judge.name
    if timeout is None:
        return lambda args, kwargs: func(*args, **kwargs)
    return lambda args, kwargs: call_with_timeout(func, args, kwargs, timeout, name)


def invoker_async(judge: Judge) -> AsyncInvoke:
    """How an async attempt runs here: awaited, under ``asyncio.timeout`` with ``timeout``."""
    func, timeout, name = judge.func, judge.timeout, judge.name

    async def invoke(args: Args, kwargs: Kwargs) -> Any:
        return await func(*args, **kwargs)

    if timeout is None:
        return invoke

    async def invoke_timed(args: Args, kwargs: Kwargs) -> Any:
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await func(*args, **kwargs)
        except TimeoutError as exc:
            if scope.expired():
                raise timeout_error(name, timeout) from exc
            raise

    return invoke_timed


def _until(judge: Judge, call: Call) -> Any:
    """An attempt of a call with a deadline: on a helper thread, cut at the deadline (or
    at ``timeout``, if that comes first); calls made inside see the deadline."""
    at = call.deadline
    assert at is not None
    left = judge.time_left(call)
    timeout = judge.timeout
    cut = timeout is None or timeout > left
    seconds = left if cut else timeout
    assert seconds is not None
    args, kwargs = call.attempt_args()
    with scope(at):
        return call_with_timeout(judge.func, args, kwargs, seconds, judge.name, deadline=cut)


def _slot(judge: Judge, call: Call, slots: RunningLimit | None = None) -> None:
    slots = slots if slots is not None else judge.slots
    assert slots is not None
    started = CLOCK.monotonic()
    if call.deadline is None:
        slots.acquire()
    elif not slots.acquire(judge.time_left(call)):
        raise judge.expired(call)
    waited = CLOCK.monotonic() - started
    judge.waited(waited)
    judge.slept("concurrency", waited)


def before(judge: Judge, call: Call) -> list[Release]:
    """Everything before an attempt starts, waiting where told: its concurrency slot, its
    pauses, its value's slot, its rate-limit admission; then it is started. Returns what
    to give back when it ends (given back here if this raises)."""
    held: list[Release] = []
    try:
        slots = judge.slots
        if slots is not None:
            _slot(judge, call)
            held.append(slots.release)
        while (wait := judge.gate(call)) > 0:
            CLOCK.sleep(wait)
            judge.slept("pause", wait)
        if judge.shared:
            value_slots = judge.value_slots(call)
            if value_slots is not None:
                _slot(judge, call, value_slots)
                held.append(value_slots.release)
        admit(judge, call)
        judge.started(call)
    except BaseException:
        _give_back(held)
        raise
    return held


def _give_back(held: list[Release]) -> None:
    for release in reversed(held):
        release()


def _attempt(judge: Judge, call: Call, invoke: Invoke) -> Outcome:
    """One attempt on this thread, from its concurrency slot to its outcome."""
    held = before(judge, call)
    try:
        if call.deadline is not None:
            return True, _until(judge, call)
        return True, invoke(*call.attempt_args())
    except BaseException as exc:
        return False, exc
    finally:
        _give_back(held)


def drive(judge: Judge, call: Call, invoke: Invoke, first: Outcome | None = None) -> Any:
    """Run ``call`` to its end on this thread."""
    if judge.hedge is not None and first is None:  # (a hedged call is never plain)
        from opero.core.hedge import drive_hedged  # (loaded with the first hedged call)

        return drive_hedged(judge, call, invoke, before)
    try:
        outcome = first if first is not None else _attempt(judge, call, invoke)
        while True:
            wait = judge.settle(call, *outcome)
            if wait is None:
                return outcome[1]
            if wait > 0:
                CLOCK.sleep(wait)
                judge.slept("backoff", wait)
            outcome = _attempt(judge, call, invoke)
    except Exception as exc:
        judge.gave_up(call, exc)
        raise


async def before_async(
    judge: Judge, call: Call, workers: asyncio.Semaphore | None
) -> list[Release]:
    """:func:`before` in a task; ``workers``: a map's free workers, one taken after the
    concurrency slot and before the rate-limit booking."""
    held: list[Release] = []
    try:
        slots = judge.slots
        if slots is not None:
            await _slot_async(judge, call)
            held.append(slots.release)
        if workers is not None:
            try:
                if call.deadline is None:
                    await workers.acquire()
                else:
                    async with asyncio.timeout(judge.time_left(call)):
                        await workers.acquire()
            except TimeoutError:
                if call.deadline is not None:
                    raise judge.expired(call) from None
                raise
            held.append(workers.release)
        while (wait := judge.gate(call)) > 0:
            await CLOCK.async_sleep(wait)
            judge.slept("pause", wait)
        if judge.shared:
            value_slots = judge.value_slots(call)
            if value_slots is not None:
                await _slot_async(judge, call, value_slots)
                held.append(value_slots.release)
        await admit_async(judge, call)
        judge.started(call)
    except BaseException:
        _give_back(held)
        raise
    return held


async def _attempt_async(
    judge: Judge, call: Call, invoke: AsyncInvoke, workers: asyncio.Semaphore | None
) -> Outcome:
    held = await before_async(judge, call, workers)
    try:
        if call.deadline is not None:
            return await _until_async(judge, call, invoke)
        return True, await invoke(*call.attempt_args())
    except BaseException as exc:
        return False, exc
    finally:
        _give_back(held)


async def _slot_async(judge: Judge, call: Call, slots: RunningLimit | None = None) -> None:
    slots = slots if slots is not None else judge.slots
    assert slots is not None
    started = CLOCK.monotonic()
    if call.deadline is None:
        await slots.acquire_async()
    elif not await slots.acquire_async(judge.time_left(call)):
        raise judge.expired(call)
    waited = CLOCK.monotonic() - started
    judge.waited(waited)
    judge.slept("concurrency", waited)


async def _until_async(judge: Judge, call: Call, invoke: AsyncInvoke) -> Outcome:
    """An attempt of a call with a deadline, cancelled at the deadline; calls made inside
    see it."""
    at = call.deadline
    assert at is not None
    cut = asyncio.timeout(judge.time_left(call))
    with scope(at):
        try:
            async with cut:
                return True, await invoke(*call.attempt_args())
        except TimeoutError as exc:
            if cut.expired():
                error = timeout_error(judge.name, 0, deadline=True)
                error.__cause__ = exc
                return False, error
            raise


async def drive_async(
    judge: Judge,
    call: Call,
    invoke: AsyncInvoke,
    first: Outcome | None = None,
    workers: asyncio.Semaphore | None = None,
) -> Any:
    """Run ``call`` to its end in this task."""
    if judge.hedge is not None and first is None:
        from opero.core.hedge import room_of
        from opero.core.hedge_async import drive_hedged_async

        room = room_of(judge, invoke)
        if room is not None:  # (process maps do not hedge)
            return await drive_hedged_async(judge, call, invoke, workers, room, before_async)
    try:
        outcome = first if first is not None else await _attempt_async(judge, call, invoke, workers)
        while True:
            wait = judge.settle(call, *outcome)
            if wait is None:
                return outcome[1]
            if wait > 0:
                await CLOCK.async_sleep(wait)
                judge.slept("backoff", wait)
            outcome = await _attempt_async(judge, call, invoke, workers)
    except Exception as exc:
        judge.gave_up(call, exc)
        raise
