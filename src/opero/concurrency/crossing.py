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
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Mapping
from typing import Any

from opero.core.retry import retry_after_of
from opero.errors import RemoteError

__all__ = ["Rebuilt", "ResponseStandIn", "portable_failure", "rebuild_exception"]

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


def _attributes(exc: BaseException) -> dict[str, Any]:
    """The instance attributes that can cross: as they are, as a stand-in (a response), as
    a plain dict (headers), or left out."""
    out: dict[str, Any] = {}
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
    args: tuple[Any, ...],
    attributes: Mapping[str, Any],
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
