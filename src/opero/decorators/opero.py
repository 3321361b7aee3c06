"""``@opero``: cache -> retry -> arg_fallback -> rate limit around one sync or async function.

Options are validated once (:mod:`opero.options`); :mod:`opero.decorators.parts` builds the
cache layer and the judge; :mod:`opero.decorators.wrappers` picks the wrapper that does
the least work per call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    ParamSpec,
    Protocol,
    TypeVar,
    Unpack,
    overload,
)

from opero.cache.replay import async_stream, sync_stream
from opero.combinations import check_stream_max
from opero.core.callables import stream_kind
from opero.core.judge import Judge
from opero.core.stats import CacheInfo, Stats
from opero.decorators.observe import attach
from opero.decorators.parts import build
from opero.decorators.variants import CallOptions, assemble, checked, variants
from opero.options import resolve, signature

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.options import OperoOptions

__all__ = ["OperoFunction", "check_function", "decorate_with", "opero"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
S = TypeVar("S")


class OperoFunction(Protocol, Generic[P, R]):
    """A function decorated by ``@opero``: same parameters and return type, plus
    ``cache_clear()``, ``cache_delete(...)`` and ``cache_contains(...)``. As a method it
    binds like a function (``__get__``), so type checkers accept calls of decorated instance
    methods and classmethods."""

    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def cache_clear(self) -> None:
        """Remove every cached result of this function."""

    def cache_info(self) -> CacheInfo:
        """``(hits, misses, maxsize, currsize)``, as ``functools.lru_cache`` reports them."""
        ...

    def cache_delete(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Remove the cached result of the call with these arguments (the key that call
        uses); whether one was there. For a method, call it through the class with the
        instance first: ``Cls.method.cache_delete(obj, ...)``."""
        ...

    def cache_contains(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Whether a fresh (unexpired) result of the call with these arguments is cached."""
        ...

    def stats(self) -> Stats:
        """What happened since decoration (calls, hits, attempts, failures, ...)."""
        ...

    def with_options(self, **overrides: Unpack[CallOptions]) -> OperoFunction[P, R]:
        """This function with ``cache`` (True, False, "refresh"), ``retries``,
        ``deadline``, ``timeout`` or ``retry_on_result`` changed for the calls made through
        the result; it shares this function's cache, limits, pauses, budget and stats."""
        ...

    @overload
    def __get__(
        self: OperoFunction[Concatenate[type[S], P2], R], instance: object, owner: type[S]
    ) -> OperoFunction[P2, R]: ...  # a classmethod: cls bound

    @overload
    def __get__(
        self, instance: None, owner: type[Any] | None = None
    ) -> OperoFunction[P, R]: ...  # through the class: unbound

    @overload
    def __get__(
        self: OperoFunction[Concatenate[S, P2], R], instance: S, owner: type[Any] | None = None
    ) -> OperoFunction[P2, R]: ...  # through an instance: self bound


@overload
def opero(func: Callable[P, R], /) -> OperoFunction[P, R]: ...


@overload
def opero(
    func: None = None, /, **options: Unpack[OperoOptions]
) -> Callable[[Callable[P, R]], OperoFunction[P, R]]: ...


def opero(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make one sync or async function resilient: cache -> retry -> arg_fallback -> rate limit.

    Use as ``@opero`` or ``@opero(...)``. A sync function stays sync and an ``async def``
    function stays a coroutine function; name, docstring, signature and type hints are kept.
    A generator or async-generator function is a stream and stays one: retried until its
    first item (``timeout`` bounds the wait for it), its items cached as a list when it ends
    normally (at most ``cache_stream_max`` items, default 10_000) and replayed on a hit.

    Cache (checked first; a hit makes no attempt and takes no rate-limit admission):
        cache: cache successful results (default True; use False for calls with side effects).
        cache_ttl: seconds a result stays valid (default 3600; None: no expiry).
        cache_backend: "memory" (per process, default), "disk" (persistent, shared by
            processes) or "redis" (shared by processes and machines).
        cache_key: callable taking the call's ``*args, **kwargs`` and returning the key
            (None: do not cache this call). Default: the arguments themselves.
        cache_namespace: prefix of disk and Redis keys (default "opero").
        cache_maxsize: entries kept by the memory backend, least recently used evicted
            (default 10_000).
        cache_dir: directory of the disk backend (default: the user cache dir + "opero").
        cache_url: Redis URL (default: $OPERO_REDIS_URL, else redis://localhost:6379/0); the
            Redis rate limit uses it too.
        cache_serializer: "pickle" (default, any picklable value) or "json" (JSON values
            only; reading cannot run code) for the disk and Redis backends.
    Retry (a round tries every fallback value; a failed round waits, then the next starts):
        retries: extra rounds after the first (default 3, so up to 4 rounds).
        backoff_factor: growth of the delay per round (default 1.5, >= 1).
        min_delay: delay before the first retry, seconds (default 0.1).
        max_delay: cap of every delay, seconds (default 30).
        retry_on: exception type(s) that are retried or fall back (default ``Exception``);
            cancellation, KeyboardInterrupt, SystemExit and GeneratorExit never are.
        jitter: spread each delay uniformly within +-25 % (default True). A ``retry_after``
            attribute or ``Retry-After`` header on the exception sets the delay instead.
        timeout: seconds one attempt may take before it is abandoned as a ``TimeoutError``
            (default None: no limit).
    Fallback:
        arg_fallback: name of a parameter whose list/tuple value is tried element by
            element within each round (default None). Each call receives one element.
    Rate limit (gates every attempt):
        rate_limit: attempts per second, shared by every thread and task (default None).
        rate_limit_backend: "memory" (default: one limit per process) or "redis" (one limit
            for every process using the same Redis).
    Hooks (plain callables receiving a frozen dataclass; their errors are logged and ignored):
        on_retry, on_fallback, on_cache_hit.
    Telemetry:
        telemetry: True: every call is an OpenTelemetry span with a child span per attempt,
            and metrics (needs the ``opero[otel]`` extra); None (default): only while
            ``opero.telemetry.enable()`` is in effect; False: never.

    Errors: without fallback values, the last original exception (earlier attempts in its
    notes); with them, :class:`~opero.AllFailedError` holding every attempt's exception.
    Invalid options raise ``ValueError``/``TypeError`` here, at decoration time.
    """
    resolved: OperoOptions = resolve(options)

    def decorate(fn: Callable[..., Any]) -> Any:
        check_stream_max(options, fn, stream_kind(fn) is not None)
        return decorate_with(fn, resolved)

    if func is None:
        return decorate
    return decorate(func)


opero.__signature__ = signature()  # type: ignore[attr-defined]


def check_function(fn: object, decorator: str = "opero") -> Callable[..., Any]:
    """Refuse what a retrying decorator cannot wrap, with a message saying why."""
    if isinstance(fn, classmethod | staticmethod):
        raise TypeError(
            f"@{decorator} must be placed below @{type(fn).__name__} (closer to the def), "
            f"got a {type(fn).__name__} object"
        )
    if not callable(fn):
        raise TypeError(f"@{decorator} decorates a function, got {fn!r}")
    return fn


def decorate_with(fn: Callable[..., Any], options: OperoOptions) -> Any:
    """Build the wrapper of ``fn`` for already validated ``options``."""
    fn = check_function(fn)
    judge, layer = build(fn, options)
    if stream_kind(fn) is not None:
        return _stream(fn, judge, layer, layer is not None)
    wrapper = assemble(fn, judge, layer, layer is not None)
    functools.update_wrapper(wrapper, fn)
    attach(wrapper, judge, layer)
    wrapper.with_options = variants(fn, judge, layer)
    return wrapper


def _stream(
    fn: Callable[..., Any], judge: Judge, layer: CacheLayer | None, cache: bool | str
) -> Any:
    """The wrapper of a generator or async-generator function (a generator function of the
    same kind; no call span: its attempts are watched as any), with the cache mode
    ``cache`` (True, False, "refresh")."""
    make = async_stream if stream_kind(fn) == "async" else sync_stream
    wrapper = make(judge, layer if cache else None, read=cache is True)
    functools.update_wrapper(wrapper, fn)
    attach(wrapper, judge, layer)
    made: dict[frozenset[tuple[str, Any]], Any] = {}

    def with_options(**overrides: Any) -> Any:
        """This stream function with ``cache``, ``retries``, ``deadline``, ``timeout`` or
        ``retry_on_result`` changed; it shares the function's cache, limits and stats."""
        try:
            key: frozenset[tuple[str, Any]] | None = frozenset(overrides.items())
            found = made.get(key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable value: checked (and refused) below
            key, found = None, None
        if found is not None:
            return found
        mode, options = checked(judge, layer, overrides)
        inner = Judge(fn, options, judge.name, judge.services, judge.holds)  # type: ignore[arg-type]
        variant = _stream(fn, inner, layer, mode)
        if key is not None:
            made[key] = variant
        return variant

    wrapper.with_options = with_options
    return wrapper
