"""The async hedging driver (``hedge=``): attempts in tasks of their own; a slow flight gets
another attempt alongside, the first success ends the call, the others are cancelled. The
judge decides (:mod:`opero.core.hedge_rules`); the shared parts are in :mod:`opero.core.hedge`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opero.core.call import Args, AsyncInvoke, Call, Kwargs, Outcome
from opero.core.clock import CLOCK
from opero.core.deadline import scope
from opero.core.hedge import (
    DROPPED,
    BeforeAsync,
    Room,
    cut_all,
    next_wait,
)
from opero.core.hedge_rules import HELD, Flight, Leg, Release
from opero.core.judge import Judge

__all__ = ["drive_hedged_async"]


# ----- async --------------------------------------------------------------------------------
async def drive_hedged_async(
    judge: Judge,
    call: Call,
    invoke: AsyncInvoke,
    workers: asyncio.Semaphore | None,
    room: Room,
    before: BeforeAsync,
) -> Any:
    """Run ``call`` to its end in this task, attempts in tasks of their own, hedged."""
    try:
        while True:
            done, result = await _flight_async(judge, call, invoke, workers, room, before)
            if done:
                return result
            await _backoff_async(judge, result)
    except Exception as exc:
        judge.gave_up(call, exc)
        raise


async def _backoff_async(judge: Judge, wait: float) -> None:
    if wait > 0:
        await CLOCK.async_sleep(wait)
        judge.slept("backoff", wait)


async def _flight_async(
    judge: Judge,
    call: Call,
    invoke: AsyncInvoke,
    workers: asyncio.Semaphore | None,
    room: Room,
    before: BeforeAsync,
) -> tuple[bool, Any]:
    leg = Leg(False, await before(judge, call, workers)).capture(call)
    flight = Flight(CLOCK.monotonic())
    tasks: dict[asyncio.Task[Outcome], Leg] = {}
    _spawn(call, leg, invoke, tasks)
    flight.running.append(leg)
    k = 1
    try:
        while True:
            wait, cut = next_wait(judge, call, flight, k)
            done, _ = await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                if cut:  # the deadline: every attempt in flight is cut (abandoned)
                    return cut_all(judge, call, flight)
                k += 1
                if len(flight.running) <= judge.hedge_max:
                    hedge = await _hedge_async(judge, call, flight, workers, room)
                    if hedge is not None:
                        _spawn(call, hedge, invoke, tasks)
                        flight.running.append(hedge)
                continue
            ended = _settled(judge, call, flight, tasks, done)
            if ended is not None:
                return ended
    finally:
        for loser in reversed(flight.running):  # (the latest started first)
            judge.dropped(call, loser)
        for task in tasks:
            task.cancel()
            DROPPED.add(task)
            task.add_done_callback(DROPPED.discard)


def _settled(
    judge: Judge,
    call: Call,
    flight: Flight,
    tasks: dict[asyncio.Task[Outcome], Leg],
    done: set[asyncio.Task[Outcome]],
) -> tuple[bool, Any] | None:
    """The attempts that ended, judged in the order they started: the flight's end
    ((True, the call's value) or (False, the wait before the next)), or None: others run."""
    for task in sorted(done, key=lambda t: flight.running.index(tasks[t])):
        leg = tasks.pop(task)
        flight.running.remove(leg)
        ok, value = _outcome(task)
        verdict = judge.settle_leg(call, flight, leg, ok, value)
        if verdict != HELD:
            return (True, value) if verdict is None else (False, verdict)
    return None


def _outcome(task: asyncio.Task[Outcome]) -> Outcome:
    if task.cancelled():
        return False, asyncio.CancelledError()
    return task.result()


async def _hedge_async(
    judge: Judge, call: Call, flight: Flight, workers: asyncio.Semaphore | None, room: Room
) -> Leg | None:
    """A hedge that can start now with a free worker, booked and started; None: skipped."""
    held: list[Release] = []
    give_back = room()
    if give_back is None:
        return None
    held.append(give_back)
    if workers is not None:
        if not _free_now(workers):
            give_back()
            return None
        await workers.acquire()  # (free: taken without waiting)
        held.append(workers.release)
    hedge = judge.hedge_choose(call, flight.busy(), held)
    if hedge is None:
        return None
    booking = await judge.book_async(call)
    return hedge if judge.hedge_begin(call, hedge, booking) else None


def _free_now(workers: asyncio.Semaphore) -> bool:
    """Whether a map's worker gate would give a worker without waiting: an
    ``asyncio.Semaphore``, or an item's gate onto a map's ``WorkerGate``."""
    locked = getattr(workers, "locked", None)
    if locked is not None:
        return not locked()
    gate = getattr(workers, "gate", None)
    if gate is None:
        return True
    return gate.free > 0 and not gate.later


def _spawn(
    call: Call, leg: Leg, invoke: AsyncInvoke, tasks: dict[asyncio.Task[Outcome], Leg]
) -> None:
    args, kwargs = call.attempt_args()
    tasks[asyncio.create_task(_run(invoke, args, kwargs, call.deadline, leg))] = leg


async def _run(
    invoke: AsyncInvoke,
    args: Args,
    kwargs: Kwargs,
    at: float | None,
    leg: Leg,
) -> Outcome:
    try:
        if at is None:
            return True, await invoke(args, kwargs)
        with scope(at):
            return True, await invoke(args, kwargs)
    except BaseException as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return False, exc
    finally:
        leg.release()
