"""Running a batch of attempts inside a worker (thread or process).

A batch is a list of ``(args, kwargs)``; the answer is one outcome per attempt,
``(True, value, None)`` or ``(False, exception, formatted_traceback)``. Async functions run
their batch concurrently on an event loop of the worker. Outcomes that must cross a process
boundary are made portable first: an exception that cannot make the pickle round trip is
replaced by a :class:`~opero.errors.RemoteError` carrying its type, message, traceback and
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pickle
import traceback
from collections.abc import Callable
from typing import Any

from opero.core.retry import retry_after_of
from opero.core.timeout import call_with_timeout, timeout_error
from opero.errors import OperoError, RemoteError

__all__ = [
    "FunctionRef",
    "Outcome",
    "RemoteTraceback",
    "attach_remote_traceback",
    "portable",
    "run_batch",
    "run_one",
]

Attempt = tuple[tuple[Any, ...], dict[str, Any]]
Outcome = tuple[bool, Any, str | None]


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
    def of(cls, fn: Callable[..., Any]) -> FunctionRef:
        return cls(fn.__module__, fn.__qualname__)

    def resolve(self) -> Callable[..., Any]:
        obj: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        target = getattr(obj, "__opero_map_target__", None)
        return target if target is not None else obj  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[object, ...]:
        return (FunctionRef, (self.module, self.qualname))

    def __repr__(self) -> str:
        return f"{self.module}.{self.qualname}"


def run_one(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
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
    except Exception as exc:
        return (False, exc, traceback.format_exc())
    return (True, value, None)


async def _one_async(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
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


def run_batch(
    fn: Callable[..., Any], batch: list[Attempt], timeout: float | None = None
) -> list[Outcome]:
    """Run every attempt of ``batch``; never raises for an attempt's own exception."""
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(_run_async_batch(fn, batch, timeout))
    name = getattr(fn, "__qualname__", repr(fn))
    outcomes: list[Outcome] = []
    for args, kwargs in batch:
        try:
            if timeout is None:
                value = fn(*args, **kwargs)
            else:
                value = call_with_timeout(fn, args, kwargs, timeout, name)
        except Exception as exc:
            outcomes.append((False, exc, traceback.format_exc()))
        else:
            outcomes.append((True, value, None))
    return outcomes


async def _run_async_batch(
    fn: Callable[..., Any], batch: list[Attempt], timeout: float | None
) -> list[Outcome]:
    async def one(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
        try:
            value = await _one_async(fn, args, kwargs, timeout)
        except Exception as exc:
            return (False, exc, traceback.format_exc())
        return (True, value, None)

    return list(await asyncio.gather(*(one(a, k) for a, k in batch)))


def portable(outcome: Outcome) -> Outcome:
    """``outcome`` if it survives a pickle round trip, else a stand-in that does."""
    ok, value, tb = outcome
    try:
        pickle.loads(pickle.dumps(value))
    except Exception as exc:
        if ok:
            error: Exception = RemoteError(
                "opero.UnpicklableResult",
                f"the result ({type(value).__qualname__}) cannot be sent back from the worker "
                f"process: {exc!r}; return a picklable value or use mode='thread'",
            )
            return (False, error, None)
        t = type(value)
        return (
            False,
            RemoteError(
                f"{t.__module__}.{t.__qualname__}", str(value), tb or "", retry_after_of(value)
            ),
            tb,
        )
    return outcome


class WorkerSetupError(OperoError):
    """The worker could not load the function it is to run."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as text (its ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def attach_remote_traceback(outcome: Outcome) -> None:
    """Give a failure that crossed a process boundary its worker traceback as ``__cause__``."""
    ok, exc, tb = outcome
    if (
        not ok
        and tb
        and isinstance(exc, BaseException)
        and exc.__cause__ is None
        and exc.__traceback__ is None
    ):
        exc.__cause__ = RemoteTraceback(tb)
