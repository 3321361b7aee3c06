"""The stream driver: the attempts of a generator function, until its first item.

A stream is a driver, not a new rule: each attempt takes its concurrency slot, waits where
the judge says (pauses, cooldowns, the rate limit), starts the generator and asks it for its
first item; that outcome goes to :meth:`~opero.core.judge.Judge.settle` like any attempt's
(the first item is the value the judge sees; a stream that ends without an item is judged
as ``[]``). Once the judge accepts it, the first item is handed out and the rest of the
stream follows; a later error reaches the caller unchanged, as the items already handed out
cannot be taken back. ``timeout`` bounds the wait for the first item; the call's deadline
bounds the whole stream. The concurrency slots stay taken until the stream ends or is
closed (abandoned): the request is in flight while it streams.

A sync attempt under ``timeout`` or a deadline asks for its item on a helper thread
(:func:`opero.core.timeout.call_with_timeout`): a generator cut there runs on and is dropped.
:mod:`opero.core.stream_async` is the async twin.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from opero.core.admit import admit
from opero.core.clock import CLOCK
from opero.core.deadline import current, scope
from opero.core.timeout import call_with_timeout

if TYPE_CHECKING:
    from opero.core.call import Call
    from opero.core.judge import Judge
    from opero.limits.running import RunningLimit

__all__ = ["END", "deadline_of", "release", "stream_sync"]

#: what ``next(stream, END)`` gives at the end of a stream
END: Any = object()


def deadline_of(judge: Judge) -> float | None:
    """When the stream's budget ends: the function's own ``deadline=`` counted from now (the
    stream starts when first asked for an item), or the enclosing one, if earlier."""
    at = current()
    own = judge.deadline
    if own is not None:
        mine = CLOCK.monotonic() + own
        at = mine if at is None or mine < at else at
    return at


def release(held: list[RunningLimit]) -> None:
    """Give back the concurrency slots an attempt took (in the order they were taken)."""
    while held:
        held.pop().release()


def _take(judge: Judge, call: Call, slots: RunningLimit, held: list[RunningLimit]) -> None:
    started = CLOCK.monotonic()
    if call.deadline is None:
        slots.acquire()
    elif not slots.acquire(judge.time_left(call)):
        raise judge.expired(call)
    held.append(slots)
    waited = CLOCK.monotonic() - started
    judge.waited(waited)
    judge.slept("concurrency", waited)


def _shut(gen: Any) -> None:
    """Close a generator whose attempt failed (one still running on a helper thread, cut
    by a timeout, is left to end there)."""
    try:
        gen.close()
    except Exception:  # the attempt's own error is the one that counts
        pass


def _item(judge: Judge, call: Call, gen: Iterator[Any], first: bool) -> Any:
    """The next item of ``gen`` (or :data:`END`): at once, or on a helper thread cut at
    ``timeout`` (first item only) or at the call's deadline."""
    at = call.deadline
    timeout = judge.timeout if first else None
    if at is None:
        if timeout is None:
            return next(gen, END)
        return call_with_timeout(next, (gen, END), {}, timeout, judge.name)
    left = at - CLOCK.monotonic()
    cut = timeout is None or timeout > left
    seconds = max(left, 0.0) if cut else timeout
    assert seconds is not None
    with scope(at):
        return call_with_timeout(next, (gen, END), {}, seconds, judge.name, deadline=cut)


def _attempt(judge: Judge, call: Call, held: list[RunningLimit]) -> tuple[bool, Any, Any]:
    """One attempt: ``(ok, first item or exception, generator or None)``; the slots it took
    are in ``held`` while the generator is open."""
    try:
        if judge.slots is not None:
            _take(judge, call, judge.slots, held)
        while (wait := judge.gate(call)) > 0:
            CLOCK.sleep(wait)
            judge.slept("pause", wait)
        if judge.shared and (more := judge.value_slots(call)) is not None:
            _take(judge, call, more, held)
        admit(judge, call)
    except BaseException:
        release(held)
        raise
    judge.started(call)
    gen = None
    try:
        args, kwargs = call.attempt_args()
        gen = judge.func(*args, **kwargs)
        first = _item(judge, call, gen, True)
    except BaseException as exc:
        if gen is not None:
            _shut(gen)
        release(held)
        return False, exc, None
    if first is END:
        release(held)
        return True, [], None  # judged as no items
    return True, first, gen


def _open(judge: Judge, call: Call, held: list[RunningLimit]) -> tuple[Any, Any]:
    """Attempts until the judge accepts one: ``(generator or None, first item)``."""
    gen = None
    try:
        ok, value, gen = _attempt(judge, call, held)
        while True:
            wait = judge.settle(call, ok, value)
            if wait is None:
                return gen, value
            if gen is not None:  # a first item the judge rejected (retry_on_result)
                _shut(gen)
                release(held)
            if wait > 0:
                CLOCK.sleep(wait)
                judge.slept("backoff", wait)
            gen = None
            ok, value, gen = _attempt(judge, call, held)
    except BaseException as exc:
        if gen is not None:
            _shut(gen)
        release(held)
        if isinstance(exc, Exception):
            judge.gave_up(call, exc)
        raise


def stream_sync(
    judge: Judge, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Generator[Any, None, None]:
    """The items of one call of the generator function ``judge.func``."""
    call = judge.call(args, kwargs, deadline=deadline_of(judge))
    held: list[RunningLimit] = []
    gen, first = _open(judge, call, held)
    if gen is None:
        return
    try:
        yield first
        at = call.deadline
        if at is None:
            yield from gen
            return
        while True:
            if at <= CLOCK.monotonic():
                raise judge.expired(call)
            try:
                item = _item(judge, call, gen, False)
            except TimeoutError as exc:
                if CLOCK.monotonic() >= at:  # cut at the deadline
                    raise judge.expired(call) from exc
                raise
            if item is END:
                return
            yield item
    finally:
        try:
            gen.close()
        except ValueError:  # still running on a helper thread cut at the deadline
            pass
        finally:
            release(held)
