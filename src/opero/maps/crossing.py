"""Exceptions crossing back from a worker process as instances of their own class.

An exception that makes the pickle round trip travels as it is. One that does not (an SDK
error holding an HTTP response, a lock, a client) travels as a :class:`Rebuilt`: its class
by name, its arguments and its attributes, each made picklable or dropped. An HTTP response
(``response`` attribute) is replaced by a :class:`ResponseStandIn` keeping ``status_code``
and ``headers``, so ``except openai.RateLimitError`` and the ``Retry-After`` rules work in
the caller as in the worker. Unpickling a :class:`Rebuilt` in the caller builds the instance
(without running its ``__init__``); a class the caller cannot import, or that cannot be
built, arrives as a :class:`~opero.errors.RemoteError` with its type name, message,
traceback and the server-directed delay read in the worker.

Items going the other way that pickle in the caller but cannot be loaded in the worker, and
answers the caller cannot load, fail as :class:`~opero.errors.UnpicklableError` naming what
did not cross (:func:`unreadable_error`, :func:`unloadable_answer`).
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opero.core.callables import CoroutineType, refused
from opero.core.retry import retry_after_of
from opero.errors import RemoteError, UnpicklableError

if TYPE_CHECKING:
    from opero.maps.records import Args, Kwargs, Results, Segment

__all__ = [
    "Rebuilt",
    "ResponseStandIn",
    "UnpicklableResultError",
    "attempts_in",
    "portable_failure",
    "portable_results",
    "rebuild_exception",
    "unloadable_answer",
    "unreadable_error",
]

#: attributes that hold an HTTP response (replaced by a stand-in, not dropped)
_RESPONSES = ("response",)


class ResponseStandIn:
    """What survives of an HTTP response that cannot cross a process boundary: its status
    code and its headers (a plain ``dict``), as ``status_code``/``status`` and ``headers``."""

    def __init__(self, status_code: int | None, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.status = status_code
        self.headers = headers

    def __repr__(self) -> str:
        return f"<ResponseStandIn status_code={self.status_code}>"


def _round_trips(value: object) -> bool:
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        return False
    return True


def _headers(value: object) -> dict[str, str] | None:
    """A plain copy of a headers mapping (httpx, requests, aiohttp and dict headers)."""
    items = getattr(value, "items", None)
    if items is None:
        return None
    try:
        return {str(k): str(v) for k, v in items()}
    except Exception:
        return None


def _stand_in(response: object) -> ResponseStandIn | None:
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(response, "status", None)
    headers = _headers(getattr(response, "headers", None)) or {}
    if not isinstance(status, int) or isinstance(status, bool):
        status = None
    if status is None and not headers:
        return None
    return ResponseStandIn(status, headers)


def _attributes(exc: BaseException) -> Kwargs:
    """The instance attributes that can cross: as they are, as a stand-in (a response), as
    a plain dict (headers), or left out."""
    out: Kwargs = {}
    for name, value in getattr(exc, "__dict__", {}).items():
        if name in ("__traceback__", "__cause__", "__context__"):
            continue
        if name in _RESPONSES and value is not None:
            if _round_trips(value):
                out[name] = value
            else:
                stand_in = _stand_in(value)
                if stand_in is not None:
                    out[name] = stand_in
            continue
        if _round_trips(value):
            out[name] = value
            continue
        headers = _headers(value) if name == "headers" else None
        if headers is not None:
            out[name] = headers
    return out


class Rebuilt:
    """An exception on its way back, as picklable parts; unpickled as the exception."""

    def __init__(self, exc: BaseException, tb: str | None) -> None:
        kind = type(exc)
        self.module = kind.__module__
        self.qualname = kind.__qualname__
        self.args = tuple(a if _round_trips(a) else repr(a) for a in exc.args)
        self.attributes = _attributes(exc)
        self.message = str(exc)
        self.tb = tb or ""
        self.retry_after = retry_after_of(exc)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            rebuild_exception,
            (
                self.module,
                self.qualname,
                self.args,
                self.attributes,
                self.message,
                self.tb,
                self.retry_after,
            ),
        )


def rebuild_exception(
    module: str,
    qualname: str,
    args: Args,
    attributes: Mapping[str, object],
    message: str,
    tb: str,
    retry_after: float | None,
) -> BaseException:
    """The exception again, of its own class, in the caller (run by unpickling)."""
    name = f"{module}.{qualname}"
    try:
        kind: Any = importlib.import_module(module)
        for part in qualname.split("."):
            kind = getattr(kind, part)
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(f"{name} is not an exception class")
        exc = kind.__new__(kind, *args)
        exc.args = args
        for attr, value in attributes.items():
            object.__setattr__(exc, attr, value)
    except Exception:
        return RemoteError(name, message, tb, retry_after)
    return exc


def portable_failure(exc: BaseException, tb: str | None) -> tuple[BaseException, str | None]:
    """``exc`` itself if it makes the pickle round trip, else its :class:`Rebuilt` form (or
    a :class:`RemoteError` when even that cannot be sent)."""
    if _round_trips(exc):
        return exc, tb
    rebuilt = Rebuilt(exc, tb)
    if _round_trips(rebuilt):
        return rebuilt, tb  # type: ignore[return-value]  # unpickled as the exception
    t = type(exc)
    return RemoteError(
        f"{t.__module__}.{t.__qualname__}", str(exc), tb or "", rebuilt.retry_after
    ), tb


def attempts_in(batch: list[Segment]) -> int:
    """How many attempts a batch holds."""
    return sum(len(rows) for rows, _, _ in batch)


def _what(batch: list[Segment]) -> str:
    """The attempt of a one-attempt batch, by the types of its item and arguments."""
    if attempts_in(batch) != 1:
        return f"one of a batch of {attempts_in(batch)} attempts"
    rows, kwargs, bare = batch[0]
    args = (rows[0],) if bare else tuple(rows[0])
    what = f"the item ({type(args[0]).__qualname__})" if args else "the call"
    extra = [type(a).__qualname__ for a in (*args[1:], *kwargs.values())]
    return f"{what} or its arguments ({', '.join(extra)})" if extra else what


def unreadable_error(batch: list[Segment], reason: str) -> UnpicklableError:
    """The error for a batch the worker could not unpickle (never retried: it would fail
    the same way)."""
    return UnpicklableError(
        f"{_what(batch)} reached the worker process but cannot be unpickled there "
        f"({reason}). A class defined inside `if __name__ == '__main__':` of a script "
        "cannot be loaded by worker processes under the spawn or forkserver start method: "
        "define it at module level or in an importable module; an object's __setstate__ "
        "or __reduce__ must work in a fresh process. Or use mode='thread'."
    )


def unloadable_answer(batch: list[Segment], exc: Exception) -> UnpicklableError:
    """The error for results the worker sent but the caller cannot unpickle."""
    error = UnpicklableError(
        f"the result of {_what(batch)} came back from the worker process but cannot be "
        f"unpickled here: {exc!r}; return values whose class the caller can import and "
        "load (or use mode='thread')"
    )
    error.__cause__ = exc
    return error


def portable_results(results: Results, name: str = "the function") -> Results:
    """``results`` with every value and exception able to cross a process boundary
    (``name``: the function's, for the error of a coroutine it returned)."""
    values, failures = results
    checked = {i: portable_failure(exc, tb) for i, (exc, tb) in failures.items()}
    for i, value in enumerate(values):
        if i in checked:
            continue
        if type(value) is CoroutineType:  # a misdeclared async def, refused as in the caller
            values[i] = None
            checked[i] = (refused(name, value), None)
            continue
        try:
            pickle.dumps(value)
        except Exception as exc:
            values[i] = None
            checked[i] = (_unpicklable_result(value, exc), None)
    return values, checked


class UnpicklableResultError(RemoteError, UnpicklableError):
    """A result that cannot be pickled in the worker to come back: an
    :class:`~opero.errors.UnpicklableError` (never retried: the next attempt would return
    the same kind of value) and, as before, a :class:`~opero.errors.RemoteError`."""


def _unpicklable_result(value: object, exc: BaseException) -> UnpicklableResultError:
    return UnpicklableResultError(
        "opero.UnpicklableResult",
        f"the result ({type(value).__qualname__}) cannot be sent back from the worker "
        f"process, it cannot be pickled: {exc!r}; return a picklable value (plain data, or "
        "an object without locks, clients or open files) or use mode='thread'",
    )
