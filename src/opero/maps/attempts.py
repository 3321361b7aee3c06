"""Running a batch of attempts inside a worker (thread or process).

A thread runs one attempt at a time (:func:`run_one`, outcome ``(ok, value_or_exception,
traceback)``); a process runs batches (:func:`run_segments`, answer ``(values, failures)``).
Async functions run a batch concurrently on an event loop of the worker. Outcomes that
must cross a process boundary are made portable first: an exception that cannot make the
pickle round trip crosses as an instance of its own class (:mod:`opero.maps.crossing`),
or, if even that fails, as a :class:`~opero.errors.RemoteError`.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable

from opero.core.callables import is_async_callable
from opero.core.timeout import call_with_timeout, timeout_error
from opero.maps.crossing import UnpicklableResultError, portable_results
from opero.maps.records import (
    Args,
    Failures,
    Function,
    Kwargs,
    Outcome,
    Results,
    Rows,
    Segment,
)
from opero.maps.targets import ByValue, FunctionRef, process_target, resolved

__all__ = [
    "Args",
    "ByValue",
    "Failures",
    "Function",
    "FunctionRef",
    "Kwargs",
    "Outcome",
    "RemoteTraceback",
    "Results",
    "Rows",
    "Segment",
    "UnpicklableResultError",
    "attach_remote_traceback",
    "portable_results",
    "process_target",
    "run_one",
    "run_remote",
    "run_segments",
]


def run_one(
    fn: Function,
    args: Args,
    kwargs: Kwargs,
    timeout: float | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Outcome:
    """Run one attempt on this thread (an async function on ``loop``)."""
    try:
        if loop is not None:
            value = loop.run_until_complete(_one_async(fn, args, kwargs, timeout))
        elif timeout is None:
            value = fn(*args, **kwargs)
        else:
            value = call_with_timeout(fn, args, kwargs, timeout, getattr(fn, "__qualname__", ""))
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: handed back, never lost
        return Outcome(False, exc, traceback.format_exc())
    return Outcome(True, value)


async def _one_async(fn: Function, args: Args, kwargs: Kwargs, timeout: float | None) -> object:
    if timeout is None:
        return await fn(*args, **kwargs)
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await fn(*args, **kwargs)
    except TimeoutError as exc:
        if scope.expired():
            raise timeout_error(getattr(fn, "__qualname__", ""), timeout) from exc
        raise


#: told of each outcome of an async batch as it ends: (position, ok, value, traceback)
Record = Callable[[int, bool, object, str | None], object]


def run_segments(
    fn: Function,
    segments: list[Segment],
    record: Record | None = None,
) -> Results:
    """Run every attempt of a batch; never raises for an attempt's own exception.

    A batch is a list of segments ``(rows, kwargs, bare)``: each row is the positional
    arguments of one attempt (the only argument when ``bare``) and ``kwargs`` is shared by
    the segment's rows. The answer is
    ``(values, failures)``: one value per attempt in order (None where it failed) and
    ``{position: (exception, formatted traceback)}`` for the attempts that raised.
    ``record(position, ok, value, traceback)`` is told of each outcome of an async batch as
    it ends (a process worker keeps it where its death cannot take it).
    """
    if is_async_callable(fn):
        return asyncio.run(_run_async_segments(fn, segments, record))
    values: list[object] = []
    failures: Failures = {}
    append = values.append
    for rows, kwargs, bare in segments:
        for row in rows:
            try:
                append(fn(row, **kwargs) if bare else fn(*row, **kwargs))
            except BaseException as exc:  # sent back; the caller re-raises a BaseException
                failures[len(values)] = (exc, traceback.format_exc())
                append(None)
    return values, failures


async def _run_async_segments(
    fn: Function,
    segments: list[Segment],
    record: Record | None = None,
) -> Results:
    async def one(position: int, args: Args, kwargs: Kwargs) -> Outcome:
        try:
            value = await fn(*args, **kwargs)
        except BaseException as exc:
            outcome = Outcome(False, exc, traceback.format_exc())
        else:
            outcome = Outcome(True, value)
        if record is not None:
            record(position, *outcome)
        return outcome

    calls = ((row,) if bare else row for rows, _, bare in segments for row in rows)
    every_kwargs = (k for rows, k, _ in segments for _ in rows)
    outcomes = await asyncio.gather(
        *(one(n, args, k) for n, (args, k) in enumerate(zip(calls, every_kwargs, strict=True)))
    )
    values: list[object] = []
    failures: Failures = {}
    for i, outcome in enumerate(outcomes):
        if outcome.ok:
            values.append(outcome.value)
        else:
            failures[i] = (outcome.error, outcome.tb)
            values.append(None)
    return values, failures


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as text (its ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def attach_remote_traceback(exc: BaseException, tb: str | None) -> None:
    """Give a failure that crossed a process boundary its worker traceback as ``__cause__``."""
    if tb and exc.__cause__ is None and exc.__traceback__ is None:
        exc.__cause__ = RemoteTraceback(tb)


def run_remote(
    target: FunctionRef | ByValue | Function,
    segments: list[Segment],
    caller_pid: int,
) -> Results:
    """A batch run by a foreign executor (a pool, a Dask worker): resolve the function by
    name where needed, run the batch, and make failures portable when this is another
    process than the caller's."""
    import os

    results = run_segments(resolved(target), segments)
    if os.getpid() != caller_pid and results[1]:
        values, failures = results
        results = (values, portable_results(([], failures))[1])
    return results
