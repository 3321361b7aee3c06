"""The one table of options: each option's name, type, default and check, written once.

:class:`OperoOptions` (and :class:`OperomapOptions`, which adds the map options) is a
``TypedDict`` whose annotations carry an :class:`Opt` with the default and the check. Type
checkers read it through ``**options: Unpack[OperoOptions]`` on the decorators; at run time
the same annotations give :data:`OPTIONS` / :data:`MAP_OPTIONS`, the decorators'
``__signature__`` (for ``help()`` and ``inspect``), and validation. A bad value raises
``ValueError`` or ``TypeError`` naming the option, the value and what is accepted.
"""

import inspect
import math
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Annotated, Any, NoReturn, TypedDict, cast

from opero.rates import Limit, RateLimit, limits_of

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
#: accepted ``mode`` values, with the aliases of the older map helpers
MODES = {
    "dask": "dask",
    "thread": "thread",
    "process": "process",
    "async": "async",
    "process_async": "process_async",
    "tmap": "thread",
    "pmap": "process",
    "amap": "async",
    "apmap": "process_async",
}

Check = Callable[[str, Any], Any]  #: ``check(name, value)`` returns the value to keep, or raises
Hook = Callable[[Any], object]
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class Opt:
    """An option's default and check, carried in its ``Annotated`` type."""

    __slots__ = ("check", "default")

    def __init__(self, default: Any, check: Check) -> None:
        self.default = default
        self.check = check

    def __repr__(self) -> str:
        return f"Opt({self.default!r})"


# ----- checks: each returns the value to keep ---------------------------------------------
def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _int(name: str, value: object, *, minimum: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    accepted = f"an int >= {minimum}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    return value


def _number(
    name: str, value: object, *, minimum: float, strict: bool = False, optional: bool = False
) -> float | None:
    accepted = f"a number {'>' if strict else '>='} {minimum}" + (" or None" if optional else "")
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if math.isnan(value) or value < minimum or (strict and value == minimum) or value == math.inf:
        raise ValueError(f"{name} must be {accepted} (finite), got {value!r}")
    return value


def _choice(name: str, value: object, *, accepted: tuple[str, ...]) -> str:
    if value in accepted:
        return value
    choices = ", ".join(repr(a) for a in accepted)
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _callable(name: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {value!r}")
    return value


def _hook(name: str, value: object) -> Any:
    _callable(name, value)
    if value is not None and inspect.iscoroutinefunction(value):
        raise TypeError(
            f"{name} must be a plain callable, got the coroutine function {value!r}; "
            "hooks are called synchronously (schedule async work from inside the hook)"
        )
    return value


def _text(name: str, value: object, *, what: str, empty: bool = True) -> str | None:
    if value is None and empty:
        return None
    if not isinstance(value, str) or (not empty and not value):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    return value


def _redis_url(name: str, value: object) -> str | None:
    """A Redis URL that redis-py can read: scheme, numeric port and database, options. The
    message masks the user part and leaves out the query (where secrets are)."""
    if value is None or not isinstance(value, str):
        return _text(name, type(value) if value is not None else None, what="a str or None")
    import re
    from urllib.parse import parse_qs, urlsplit

    try:  # urlsplit's own messages are not shown: they may quote a password
        parts, unix = urlsplit(value), value.startswith("unix://")
        db = parse_qs(parts.query).get("db", ["" if unix else parts.path.replace("/", "")])[0]
        ok = value.startswith(("redis://", "rediss://", "unix://")) and (not db or db.isdigit())
        if not ok or not (unix or parts.port is not None or not parts.netloc.endswith(":")):
            raise ValueError
        from redis.connection import parse_url

        cast(Callable[[str], object], parse_url)(value)  # the options it reads (?db=, ...)
    except ImportError:  # pragma: no cover - without the extra: refused when first used
        pass
    except ValueError:
        shown = re.sub(r"//.*@", "//***@", value.split("?", 1)[0])
        raise ValueError(
            f"{name} must be a Redis URL (redis://, rediss:// or unix://; a numeric port and "
            f"database; options redis-py reads), like 'redis://localhost:6379/0', got {shown!r}"
        ) from None
    return value


def _path(name: str, value: object) -> Any:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a str or os.PathLike or None, got {value!r}")
    return value


def _retry_on(name: str, value: object) -> RetryOn:
    if callable(value) and not isinstance(value, type):
        if inspect.iscoroutinefunction(value):
            raise TypeError(f"{name} must be a plain predicate (exception) -> bool, got {value!r}")
        return cast(Callable[[BaseException], bool], value)
    types = value if isinstance(value, tuple) else (value,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(
            f"{name} must be an exception type, a non-empty tuple of exception types, or a "
            f"predicate (exception) -> bool, got {value!r}"
        )
    return types


def _parameter(name: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.isidentifier()):
        raise TypeError(f"{name} must be the name of a parameter (str) or None, got {value!r}")
    return value


def _mode(name: str, value: object) -> str:
    if value not in MODES:
        accepted = ", ".join(repr(m) for m in MODES)
        raise ValueError(f"{name} must be one of {accepted}, got {value!r}")
    return MODES[value]


def _workers(name: str, value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    return value


def _executor(name: str, value: object) -> Executor | None:
    if value is not None and not isinstance(value, Executor):
        raise TypeError(
            f"{name} must be a concurrent.futures.Executor (a ThreadPoolExecutor, a "
            f"ProcessPoolExecutor, Client.get_executor()), got {value!r}"
        )
    return value


def _any(name: str, value: object) -> object:
    return value


_positive_or_none = partial(_number, minimum=0, strict=True, optional=True)


def _rate(name: str, value: object) -> tuple[Limit, ...] | None:
    return limits_of(value, name)


def _concurrency(name: str, value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"{name} must be an int >= 1 (attempts running at once) or None, got {value!r}"
        )
    return value


# ----- the table ----------------------------------------------------------------------------
class OperoOptions(TypedDict, total=False):
    """Every option of ``@opero`` (and of ``@operomap``), with its type, default and check."""

    cache: Annotated[bool, Opt(True, _bool)]
    cache_ttl: Annotated[float | None, Opt(3600, _positive_or_none)]
    cache_backend: Annotated[str, Opt("memory", partial(_choice, accepted=CACHE_BACKENDS))]
    cache_key: Annotated[Callable[..., Any] | None, Opt(None, _callable)]
    cache_namespace: Annotated[
        str, Opt("opero", partial(_text, what="a non-empty str", empty=False))
    ]
    cache_maxsize: Annotated[int, Opt(10_000, partial(_int, minimum=1))]
    cache_dir: Annotated[str | os.PathLike[str] | None, Opt(None, _path)]
    cache_url: Annotated[str | None, Opt(None, _redis_url)]
    cache_serializer: Annotated[str, Opt("pickle", partial(_choice, accepted=SERIALIZERS))]
    retries: Annotated[int, Opt(3, partial(_int, minimum=0))]
    backoff_factor: Annotated[float, Opt(1.5, partial(_number, minimum=1))]
    min_delay: Annotated[float, Opt(0.1, partial(_number, minimum=0))]
    max_delay: Annotated[float, Opt(30, partial(_number, minimum=0))]
    retry_on: Annotated[RetryOn, Opt((Exception,), _retry_on)]
    jitter: Annotated[bool, Opt(True, _bool)]
    timeout: Annotated[float | None, Opt(None, _positive_or_none)]
    arg_fallback: Annotated[str | None, Opt(None, _parameter)]
    rate_limit: Annotated[RateLimit | None, Opt(None, _rate)]
    rate_limit_backend: Annotated[
        str, Opt("memory", partial(_choice, accepted=RATE_LIMIT_BACKENDS))
    ]
    concurrency: Annotated[int | None, Opt(None, _concurrency)]
    cooldown: Annotated[float | None, Opt(None, _positive_or_none)]
    cooldown_after: Annotated[int, Opt(3, partial(_int, minimum=1))]
    on_retry: Annotated[Hook | None, Opt(None, _hook)]
    on_fallback: Annotated[Hook | None, Opt(None, _hook)]
    on_cache_hit: Annotated[Hook | None, Opt(None, _hook)]


class OperomapOptions(OperoOptions, total=False):
    """``@operomap``'s options: every ``@opero`` option, and how items are mapped."""

    mode: Annotated[str, Opt("thread", _mode)]
    workers: Annotated[int | None, Opt(None, _workers)]
    ordered: Annotated[bool, Opt(True, _bool)]
    progress: Annotated[bool, Opt(True, _bool)]
    return_exceptions: Annotated[bool, Opt(False, _bool)]
    executor: Annotated[Executor | None, Opt(None, _executor)]
    address: Annotated[str | None, Opt(None, partial(_text, what="a scheduler address str"))]
    client: Annotated[Any, Opt(None, _any)]


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
    _check_effect(values, checked)
    if map_options:
        _check_map(checked)
    return _Frozen(checked)


def _check_effect(given: Mapping[str, Any], checked: dict[str, Any]) -> None:
    """Refuse an explicitly given option that cannot have an effect with the others."""
    backend = checked["cache_backend"]
    if given.get("cache_dir") is not None and backend != "disk":
        raise ValueError(
            f"cache_dir={given['cache_dir']!r} has no effect with cache_backend={backend!r}: "
            "cache_dir is the directory of cache_backend='disk'"
        )
    if given.get("cache_url") is not None and "redis" not in (
        backend,
        checked["rate_limit_backend"],
    ):
        raise ValueError(
            "cache_url has no effect unless cache_backend='redis' or rate_limit_backend='redis' "
            f"(got cache_backend={backend!r}, rate_limit_backend="
            f"{checked['rate_limit_backend']!r})"
        )
    if "cache_serializer" in given and backend == "memory":
        raise ValueError(
            f"cache_serializer={given['cache_serializer']!r} has no effect with "
            "cache_backend='memory' (memory keeps the objects themselves); it applies to "
            "'disk' and 'redis'"
        )
    if "cooldown_after" in given and checked["cooldown"] is None:
        raise ValueError(
            f"cooldown_after={given['cooldown_after']!r} has no effect without cooldown= "
            "(the seconds a failing value is skipped)"
        )
    if given.get("on_cache_hit") is not None and not checked["cache"]:
        raise ValueError("on_cache_hit has no effect with cache=False: nothing is cached")


def _check_map(checked: dict[str, Any]) -> None:
    mode, executor = checked["mode"], checked["executor"]
    address, client = checked["address"], checked["client"]
    if (address is not None or client is not None) and (mode != "dask" or executor is not None):
        raise ValueError(
            f"address= and client= go with mode='dask' (and no executor=), got mode={mode!r}"
            + (" and an executor" if executor is not None else "")
        )
    if address is not None and client is not None:
        raise ValueError("give address= or client=, not both")


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
