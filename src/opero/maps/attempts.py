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
import importlib
import pickle
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

from opero.core.callables import is_async_callable
from opero.core.timeout import call_with_timeout, timeout_error
from opero.maps.crossing import UnpicklableResultError, portable_results

__all__ = [
    "ByValue",
    "FunctionRef",
    "Outcome",
    "RemoteTraceback",
    "Results",
    "Segment",
    "UnpicklableResultError",
    "attach_remote_traceback",
    "portable_results",
    "process_target",
    "run_one",
    "run_remote",
    "run_segments",
]

#: the user's function: a callable of its own signature, sync or async (then awaited)
Function = Callable[..., Any]
#: an attempt's positional and keyword arguments (the user's values: opaque here)
Args = tuple[object, ...]
Kwargs = dict[str, object]
#: the attempts of a job: their argument tuples, or (``bare``) the one argument of each
Rows = list[Any]
#: attempts sharing one kwargs: (rows, kwargs, bare); a row is the positional arguments of
#: an attempt, or with ``bare`` the one positional argument itself (no tuple to build)
Segment = tuple[Rows, Kwargs, bool]
#: the failures of a batch: its position -> (exception, the worker's traceback as text)
Failures = dict[int, tuple[BaseException, str | None]]
#: the answer to a batch: one value per attempt (None where it failed), and its failures
Results = tuple[list[object], Failures]


class Outcome(NamedTuple):
    """How one attempt ended: ``ok`` with its value, or not with its exception (then
    ``tb``: its traceback as text, when it ran in a worker)."""

    ok: bool
    value: object  # the exception when not ok
    tb: str | None = None

    @property
    def error(self) -> BaseException:
        """The exception of a failed attempt."""
        assert isinstance(self.value, BaseException)
        return self.value

    def result(self) -> object:
        """The value, or raise the exception."""
        if self.ok:
            return self.value
        raise self.error


class FunctionRef:
    """A by-name reference to a module-level function, resolved in the worker.

    The module attribute of an ``@operomap``-decorated function is the map wrapper, so the
    function itself cannot be pickled by reference; this names it instead and, in the
    worker, unwraps the map wrapper to the function it decorates.
    """

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    @classmethod
    def of(cls, fn: Function) -> FunctionRef:
        return cls(fn.__module__, fn.__qualname__)

    def resolve(self) -> Function:
        obj: object = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        target = getattr(obj, "__opero_map_target__", None)
        found: object = target if target is not None else obj
        if not callable(found):
            raise TypeError(f"{self} is not callable")
        return found

    def __reduce__(self) -> tuple[object, ...]:
        return (FunctionRef, (self.module, self.qualname))

    def __repr__(self) -> str:
        return f"{self.module}.{self.qualname}"


class ByValue:
    """A callable sent to worker processes pickled whole (a bound method with its ``self``,
    a ``functools.partial``, a callable object)."""

    __slots__ = ("fn", "module", "qualname")

    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.module = getattr(fn, "__module__", None) or type(fn).__module__
        self.qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__

    def resolve(self) -> Function:
        return self.fn

    def __reduce__(self) -> tuple[object, ...]:
        return (ByValue, (self.fn,))


def process_target(fn: Function) -> FunctionRef | ByValue:
    """How worker processes find ``fn``: a module-level function by name; a bound method,
    partial or callable object pickled whole. Raises ``TypeError`` saying why and what to do
    when neither works (a lambda, a closure, an unpicklable object)."""
    import inspect

    if inspect.isfunction(fn):
        name = fn.__qualname__
        if "<locals>" in name or "<lambda>" in name:
            raise TypeError(
                f"worker processes cannot load {name!r}: a lambda or a function defined "
                "inside another function cannot be loaded by name in a worker. Define it at "
                "module level (for a script, keep the map call under "
                "`if __name__ == '__main__':`), or use mode='thread' / mode='async'."
            )
        return FunctionRef.of(fn)
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise TypeError(
            f"worker processes cannot receive {fn!r}: it cannot be pickled ({exc!r}). A bound "
            "method, functools.partial or callable object is sent whole, so it and what it "
            "holds must be picklable; or use mode='thread' / mode='async'."
        ) from exc
    return ByValue(fn)


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


_resolved: dict[tuple[str, str], Function] = {}


def _function(target: FunctionRef | ByValue | Function) -> Function:
    """The function a foreign executor runs (one resolved by name is kept)."""
    if isinstance(target, ByValue):
        return target.resolve()
    if not isinstance(target, FunctionRef):
        return target
    key = (target.module, target.qualname)
    fn = _resolved.get(key)
    if fn is None:
        fn = _resolved[key] = target.resolve()
    return fn


def run_remote(
    target: FunctionRef | ByValue | Function,
    segments: list[Segment],
    caller_pid: int,
) -> Results:
    """A batch run by a foreign executor (a pool, a Dask worker): resolve the function by
    name where needed, run the batch, and make failures portable when this is another
    process than the caller's."""
    import os

    results = run_segments(_function(target), segments)
    if os.getpid() != caller_pid and results[1]:
        values, failures = results
        results = (values, portable_results(([], failures))[1])
    return results
