"""The hedging drivers (``hedge=``), sync and async: when the attempts in flight are slow,
another starts alongside. They wait and run; the judge decides (:mod:`opero.core.hedge_rules`).

A flight starts with an attempt made as usual; the k-th hedge is due k x ``hedge`` after it
started and starts only if fewer than ``1 + hedge_max`` attempts are in flight, the deadline is
not reached and the judge finds a value that can start at once (else it is skipped). The first
success ends the call; the others are dropped: a task cancelled, a thread abandoned (it ends
when its function returns; every sync attempt of a hedged call runs on a thread of its own).
When all in flight failed, the judge's wait is slept and the next flight starts. In a map, a
hedge also needs a free worker (:func:`room_of`); process maps do not hedge.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from opero.core.call import AsyncInvoke, Call, Invoke, Outcome
from opero.core.clock import CLOCK
from opero.core.deadline import scope
from opero.core.hedge_rules import HELD, Flight, Leg, Release
from opero.core.judge import Judge
from opero.core.timeout import timeout_error

__all__ = ["SPARE", "Room", "drive_hedged", "room_of"]

#: a free worker for a hedge, taken now: how to give it back, or None when none is free
Room = Callable[[], Release | None]
#: the free workers of the async map whose worker coroutine runs here, with its judge
SPARE: ContextVar[tuple[Judge, Room] | None] = ContextVar("opero_hedge_spare", default=None)

#: how an attempt gets ready (its waits taken, started): what it holds (``drive.before``)
Before = Callable[[Judge, Call], list[Release]]
BeforeAsync = Callable[[Judge, Call, asyncio.Semaphore | None], Awaitable[list[Release]]]

#: tasks of dropped attempts, kept until their cancellation is over
DROPPED: set[asyncio.Task[Outcome]] = set()


def _nothing() -> None:
    pass


def _anywhere() -> Release:
    return _nothing


def room_of(judge: Judge, invoke: AsyncInvoke) -> Room | None:
    """Where a hedge of an async driver finds a worker: a map transport's free thread,
    an async map's spare worker coroutine, anywhere outside a map; None: this transport
    does not hedge (process and executor maps)."""
    owner = getattr(invoke, "__self__", None)
    if owner is not None:
        room: Room | None = getattr(owner, "hedge_room", None)
        return room
    spare = SPARE.get()
    if spare is not None and spare[0] is judge:
        return spare[1]
    return _anywhere


def next_wait(judge: Judge, call: Call, flight: Flight, k: int) -> tuple[float, bool]:
    """Seconds until the k-th hedge is due or the deadline cuts the flight, and whether
    the deadline comes first."""
    assert judge.hedge is not None
    now = CLOCK.monotonic()
    wait = max(flight.started + k * judge.hedge - now, 0.0)
    at = call.deadline
    if at is not None and at - now <= wait:
        return max(at - now, 0.0), True
    return wait, False


def cut_all(judge: Judge, call: Call, flight: Flight) -> tuple[bool, Any]:
    """The call's deadline came: each attempt in flight ends as one cut at the deadline
    (its thread abandoned, its task cancelled); the last one's verdict is the flight's."""
    while True:
        error = timeout_error(judge.name, 0, deadline=True)
        verdict = judge.settle_leg(call, flight, flight.running.pop(0), False, error)
        if verdict != HELD:
            return False, verdict  # (never None: a failure)


# ----- sync ---------------------------------------------------------------------------------
def drive_hedged(judge: Judge, call: Call, invoke: Invoke, before: Before) -> Any:
    """Run ``call`` to its end, attempts on threads of their own, hedged."""
    try:
        while True:
            done, result = _flight(judge, call, invoke, before)
            if done:
                return result
            _backoff(judge, result)
    except Exception as exc:
        judge.gave_up(call, exc)
        raise


def _backoff(judge: Judge, wait: float) -> None:
    if wait > 0:
        CLOCK.sleep(wait)
        judge.slept("backoff", wait)


def _flight(judge: Judge, call: Call, invoke: Invoke, before: Before) -> tuple[bool, Any]:
    """One flight: (True, the call's value) or (False, the wait before the next)."""
    outcomes: queue.SimpleQueue[tuple[Leg, bool, Any]] = queue.SimpleQueue()
    leg = Leg(False, before(judge, call)).capture(call)
    flight = Flight(CLOCK.monotonic())
    _launch(judge, call, leg, invoke, outcomes)
    flight.running.append(leg)
    k = 1
    try:
        while True:
            wait, cut = next_wait(judge, call, flight, k)
            try:
                leg, ok, value = outcomes.get(timeout=wait)
            except queue.Empty:
                if cut:  # the deadline: every attempt in flight is cut (abandoned)
                    return cut_all(judge, call, flight)
                k += 1
                _hedge(judge, call, flight, invoke, outcomes)
                continue
            if leg not in flight.running:
                continue  # cut at the deadline already
            flight.running.remove(leg)
            verdict = judge.settle_leg(call, flight, leg, ok, value)
            if verdict != HELD:
                return (True, value) if verdict is None else (False, verdict)
    finally:
        for loser in reversed(flight.running):  # (the latest started first)
            judge.dropped(call, loser)


def _hedge(
    judge: Judge,
    call: Call,
    flight: Flight,
    invoke: Invoke,
    outcomes: queue.SimpleQueue[tuple[Leg, bool, Any]],
) -> None:
    """A hedge is due: launched if fewer than ``1 + hedge_max`` attempts are in flight and
    one can start now."""
    if len(flight.running) > judge.hedge_max:
        return
    hedge = judge.hedge_choose(call, flight.busy(), [])
    if hedge is not None and judge.hedge_begin(call, hedge, judge.book(call)):
        _launch(judge, call, hedge, invoke, outcomes)
        flight.running.append(hedge)


def _launch(
    judge: Judge,
    call: Call,
    leg: Leg,
    invoke: Invoke,
    outcomes: queue.SimpleQueue[tuple[Leg, bool, Any]],
) -> None:
    """Run the attempt ``leg`` on a thread of its own (in a copy of this context, under the
    call's deadline); its outcome is put in ``outcomes``, read or not."""
    args, kwargs = call.attempt_args()
    at = call.deadline

    def attempt() -> None:
        try:
            if at is None:
                outcome: Outcome = (True, invoke(args, kwargs))
            else:
                with scope(at):
                    outcome = (True, invoke(args, kwargs))
        except BaseException as exc:
            outcome = (False, exc)
        finally:
            leg.release()
        outcomes.put((leg, *outcome))

    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(attempt,), name=f"opero-hedge:{judge.name}", daemon=True
    ).start()
