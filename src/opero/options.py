"""The one table of options: each option's name, type, default and check, written once.

:class:`OperoOptions` (and :class:`OperomapOptions`, which adds the map options) is a
``TypedDict`` whose annotations carry an :class:`Opt` with the default and the check. Type
checkers read it through ``**options: Unpack[OperoOptions]`` on the decorators; at run time
the same annotations give :data:`OPTIONS` / :data:`MAP_OPTIONS`, the decorators'
``__signature__`` (for ``help()`` and ``inspect``), and validation. A bad value raises
``ValueError`` or ``TypeError`` naming the option, the value and what is accepted.
"""

import inspect
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Annotated, Any, NoReturn, TypedDict, cast

from opero.checks import (
    MODES,
    RetryOn,
    check_any,
    check_bool,
    check_callable,
    check_choice,
    check_concurrency,
    check_executor,
    check_hook,
    check_int,
    check_mode,
    check_number,
    check_parameter,
    check_path,
    check_positive_or_none,
    check_predicate,
    check_redis_url,
    check_retry_on,
    check_text,
    check_workers,
)
from opero.combinations import check_effect, check_map
from opero.limit_spec import RateLimit
from opero.policy import Adaptive, RetryBudget
from opero.service import Service, pacing_of

__all__ = [
    "CACHE_BACKENDS",
    "DEFAULTS",
    "MAP_OPTIONS",
    "MODES",
    "OPTIONS",
    "RATE_LIMIT_BACKENDS",
    "OperoOptions",
    "OperomapOptions",
    "Opt",
    "resolve",
    "retry_types",
    "signature",
]

CACHE_BACKENDS = ("memory", "disk", "redis")
RATE_LIMIT_BACKENDS = ("memory", "redis")
SERIALIZERS = ("pickle", "json")
STRATEGIES = ("order", "spread")

Check = Callable[[str, Any], Any]  #: ``check(name, value)`` returns the value to keep, or raises
Hook = Callable[[Any], object]


class Opt:
    """An option's default and check, carried in its ``Annotated`` type."""

    __slots__ = ("check", "default")

    def __init__(self, default: Any, check: Check) -> None:
        self.default = default
        self.check = check

    def __repr__(self) -> str:
        return f"Opt({self.default!r})"


def _rate(name: str, value: object) -> object:
    return pacing_of(name, value)


def _budget(name: str, value: object) -> RetryBudget | None:
    if value is None or isinstance(value, RetryBudget):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{name} must be None, a fraction from 0 to 1 or an opero.RetryBudget, got {value!r}"
        )
    try:
        return RetryBudget(ratio=value)
    except ValueError:
        raise ValueError(
            f"{name} must be None, a fraction from 0 to 1 or an opero.RetryBudget, got {value!r}"
        ) from None


OTEL_MISSING = "opero's telemetry needs the OpenTelemetry API: pip install 'opero[otel]'"


def require_otel() -> None:
    """Raise ``ImportError`` naming the ``opero[otel]`` extra when the API is missing."""
    try:
        import opentelemetry.trace  # noqa: F401 (it imports the rest of the API it needs)
    except ImportError as exc:
        raise ImportError(OTEL_MISSING) from exc


def _telemetry(name: str, value: object) -> bool | None:
    """True, False or None (follow ``opero.telemetry.enable()``); True needs the API."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None, got {value!r}")
    if value:
        require_otel()
    return value


# ----- the table ----------------------------------------------------------------------------
class OperoOptions(TypedDict, total=False):
    """Every option of ``@opero`` (and of ``@operomap``), with its type, default and check."""

    cache: Annotated[bool, Opt(True, check_bool)]
    cache_ttl: Annotated[float | None, Opt(3600, check_positive_or_none)]
    cache_backend: Annotated[str, Opt("memory", partial(check_choice, accepted=CACHE_BACKENDS))]
    cache_key: Annotated[Callable[..., Any] | None, Opt(None, check_callable)]
    cache_namespace: Annotated[
        str, Opt("opero", partial(check_text, what="a non-empty str", empty=False))
    ]
    cache_maxsize: Annotated[int, Opt(10_000, partial(check_int, minimum=1))]
    cache_dir: Annotated[str | os.PathLike[str] | None, Opt(None, check_path)]
    cache_url: Annotated[str | None, Opt(None, check_redis_url)]
    cache_serializer: Annotated[str, Opt("pickle", partial(check_choice, accepted=SERIALIZERS))]
    retries: Annotated[int, Opt(3, partial(check_int, minimum=0))]
    backoff_factor: Annotated[float, Opt(1.5, partial(check_number, minimum=1))]
    min_delay: Annotated[float, Opt(0.1, partial(check_number, minimum=0))]
    max_delay: Annotated[float, Opt(30, partial(check_number, minimum=0))]
    retry_on: Annotated[RetryOn, Opt((Exception,), check_retry_on)]
    jitter: Annotated[bool, Opt(True, check_bool)]
    timeout: Annotated[float | None, Opt(None, check_positive_or_none)]
    arg_fallback: Annotated[str | None, Opt(None, check_parameter)]
    rate_limit: Annotated[
        RateLimit | Adaptive | Service | Mapping[Any, RateLimit | Adaptive | Service] | None,
        Opt(None, _rate),
    ]
    rate_limit_backend: Annotated[
        str, Opt("memory", partial(check_choice, accepted=RATE_LIMIT_BACKENDS))
    ]
    concurrency: Annotated[int | None, Opt(None, check_concurrency)]
    cooldown: Annotated[float | None, Opt(None, check_positive_or_none)]
    cooldown_after: Annotated[int, Opt(3, partial(check_int, minimum=1))]
    deadline: Annotated[float | None, Opt(None, check_positive_or_none)]
    retry_on_result: Annotated[Callable[[Any], bool] | None, Opt(None, check_predicate)]
    retry_budget: Annotated[RetryBudget | float | None, Opt(None, _budget)]
    fallback_strategy: Annotated[str, Opt("order", partial(check_choice, accepted=STRATEGIES))]
    hedge: Annotated[float | None, Opt(None, check_positive_or_none)]
    hedge_max: Annotated[int, Opt(1, partial(check_int, minimum=1))]
    cache_stream_max: Annotated[int, Opt(10_000, partial(check_int, minimum=0))]
    on_retry: Annotated[Hook | None, Opt(None, check_hook)]
    on_fallback: Annotated[Hook | None, Opt(None, check_hook)]
    on_cache_hit: Annotated[Hook | None, Opt(None, check_hook)]
    on_attempt: Annotated[Hook | None, Opt(None, check_hook)]
    on_wait: Annotated[Hook | None, Opt(None, check_hook)]
    on_give_up: Annotated[Hook | None, Opt(None, check_hook)]
    on_breaker: Annotated[Hook | None, Opt(None, check_hook)]
    telemetry: Annotated[bool | None, Opt(None, _telemetry)]


class OperomapOptions(OperoOptions, total=False):
    """``@operomap``'s options: every ``@opero`` option, and how items are mapped."""

    mode: Annotated[str, Opt("thread", check_mode)]
    workers: Annotated[int | None, Opt(None, check_workers)]
    ordered: Annotated[bool, Opt(True, check_bool)]
    progress: Annotated[bool, Opt(True, check_bool)]
    return_exceptions: Annotated[bool, Opt(False, check_bool)]
    executor: Annotated[Executor | None, Opt(None, check_executor)]
    address: Annotated[str | None, Opt(None, partial(check_text, what="a scheduler address str"))]
    client: Annotated[Any, Opt(None, check_any)]
    fail_fast: Annotated[int | None, Opt(None, check_workers)]


def _table(typed: type) -> dict[str, tuple[Opt, Any]]:
    """name -> (Opt, annotation) read from a TypedDict of ``Annotated[type, Opt]`` fields."""
    hints = typed.__annotations__  # evaluated when the class was made (no string annotations)
    return {name: (hint.__metadata__[0], hint.__origin__) for name, hint in hints.items()}


_ALL = _table(OperomapOptions)
#: every ``@opero`` option and its :class:`Opt`
OPTIONS: dict[str, Opt] = {name: _ALL[name][0] for name in OperoOptions.__annotations__}
#: the options only ``@operomap`` has
MAP_OPTIONS: dict[str, Opt] = {n: o for n, (o, _) in _ALL.items() if n not in OPTIONS}
#: every ``@opero`` option and its default
DEFAULTS: dict[str, Any] = {name: opt.default for name, opt in OPTIONS.items()}


class _Frozen(dict[str, Any]):
    """The validated options of one decorated function; read-only."""

    def _frozen(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("options are frozen: they are validated once, at decoration time")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _frozen
    __ior__ = _frozen

    def __repr__(self) -> str:
        table = {**OPTIONS, **MAP_OPTIONS}
        changed = ", ".join(f"{n}={v!r}" for n, v in self.items() if v != table[n].default)
        return f"Options({changed})"


def resolve(values: Mapping[str, Any], *, map_options: bool = False) -> Any:
    """Every option of ``values`` checked, the others at their defaults; read-only.

    Typed by the caller as :class:`OperoOptions` or :class:`OperomapOptions` (all keys set).
    """
    table = {**OPTIONS, **MAP_OPTIONS} if map_options else OPTIONS
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}; accepted: {', '.join(table)}")
    checked = {
        name: opt.check(name, values[name]) if name in values else opt.default
        for name, opt in table.items()
    }
    if checked["max_delay"] < checked["min_delay"]:
        raise ValueError(
            f"max_delay must be >= min_delay, got max_delay={checked['max_delay']!r} "
            f"< min_delay={checked['min_delay']!r}"
        )
    check_effect(values, checked)
    if map_options:
        check_map(checked)
    return _Frozen(checked)


def retry_types(options: OperoOptions) -> tuple[type[BaseException], ...]:
    """The exception types an attempt's failure is caught as: ``retry_on``'s types, or every
    ``Exception`` when ``retry_on`` is a predicate (which then decides)."""
    value = options["retry_on"]
    if isinstance(value, tuple):
        return value
    return (Exception,)


def retry_predicate(options: OperoOptions) -> Callable[[BaseException], bool] | None:
    """``retry_on`` when it is a predicate, else None."""
    value = options["retry_on"]
    return None if isinstance(value, tuple) else cast(Callable[[BaseException], bool], value)


def signature(*, map_options: bool = False) -> inspect.Signature:
    """A decorator's signature: ``func`` positional-only, then every option keyword-only."""
    names = list(_ALL) if map_options else list(OPTIONS)
    params = [inspect.Parameter("func", inspect.Parameter.POSITIONAL_ONLY, default=None)]
    params += [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=_ALL[name][0].default, annotation=hint
        )
        for name in names
        for hint in (_ALL[name][1],)
    ]
    return inspect.Signature(params, return_annotation=Any)
