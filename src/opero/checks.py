"""The checks of option values: each ``check(name, value)`` returns the value to keep, or
raises ``ValueError``/``TypeError`` naming the option, the value and what is accepted."""

import inspect
import math
import os
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, cast

__all__ = [
    "MODES",
    "RetryOn",
    "check_any",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_concurrency",
    "check_executor",
    "check_hook",
    "check_int",
    "check_mode",
    "check_number",
    "check_parameter",
    "check_path",
    "check_positive_or_none",
    "check_predicate",
    "check_redis_url",
    "check_retry_on",
    "check_text",
    "check_workers",
]

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

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


# ----- checks: each returns the value to keep ---------------------------------------------
def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_int(name: str, value: object, *, minimum: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    accepted = f"an int >= {minimum}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {accepted}, got {value!r}")
    return value


def check_number(
    name: str, value: object, *, minimum: float, strict: bool = False, optional: bool = False
) -> float | None:
    accepted = f"a number {'>' if strict else '>='} {minimum}" + (" or None" if optional else "")
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if not _within(value, minimum, strict):
        raise ValueError(f"{name} must be {accepted} (finite), got {value!r}")
    return value


def _within(value: float, minimum: float, strict: bool) -> bool:
    """``value`` is finite and at least (``strict``: above) ``minimum``."""
    if math.isnan(value) or value == math.inf:
        return False
    return value > minimum if strict else value >= minimum


def check_choice(name: str, value: object, *, accepted: tuple[str, ...]) -> str:
    if value in accepted:
        return value
    choices = ", ".join(repr(a) for a in accepted)
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_callable(name: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {value!r}")
    return value


def check_hook(name: str, value: object) -> Any:
    check_callable(name, value)
    if value is not None and inspect.iscoroutinefunction(value):
        raise TypeError(
            f"{name} must be a plain callable, got the coroutine function {value!r}; "
            "hooks are called synchronously (schedule async work from inside the hook)"
        )
    return value


def check_predicate(name: str, value: object) -> Any:
    """A plain ``(value) -> bool`` callable, or None."""
    check_callable(name, value)
    if value is not None and inspect.iscoroutinefunction(value):
        raise TypeError(
            f"{name} must be a plain predicate (result) -> bool, got the coroutine function "
            f"{value!r}; it is called synchronously on each result"
        )
    return value


def check_text(name: str, value: object, *, what: str, empty: bool = True) -> str | None:
    if value is None and empty:
        return None
    if not isinstance(value, str) or (not empty and not value):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    return value


def check_redis_url(name: str, value: object) -> str | None:
    """A Redis URL that redis-py can read: scheme, numeric port and database, options. The
    message masks the user part and leaves out the query (where secrets are)."""
    if value is None or not isinstance(value, str):
        return check_text(name, type(value) if value is not None else None, what="a str or None")
    import re

    try:  # urlsplit's own messages are not shown: they may quote a password
        if not _redis_shaped(value):
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


def _redis_shaped(value: str) -> bool:
    """A Redis scheme, a numeric database (path or ``?db=``) and, unless a socket, a
    numeric port when one is given. Raises ``ValueError`` where ``urlsplit`` does."""
    from urllib.parse import parse_qs, urlsplit

    parts, unix = urlsplit(value), value.startswith("unix://")
    db = parse_qs(parts.query).get("db", ["" if unix else parts.path.replace("/", "")])[0]
    if not value.startswith(("redis://", "rediss://", "unix://")) or (db and not db.isdigit()):
        return False
    return unix or parts.port is not None or not parts.netloc.endswith(":")


def check_path(name: str, value: object) -> Any:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a str or os.PathLike or None, got {value!r}")
    return value


def check_retry_on(name: str, value: object) -> RetryOn:
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


def check_parameter(name: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.isidentifier()):
        raise TypeError(f"{name} must be the name of a parameter (str) or None, got {value!r}")
    return value


def check_mode(name: str, value: object) -> str:
    if value not in MODES:
        accepted = ", ".join(repr(m) for m in MODES)
        raise ValueError(f"{name} must be one of {accepted}, got {value!r}")
    return MODES[value]


def check_workers(name: str, value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    return value


def check_executor(name: str, value: object) -> Executor | None:
    if value is not None and not isinstance(value, Executor):
        raise TypeError(
            f"{name} must be a concurrent.futures.Executor (a ThreadPoolExecutor, a "
            f"ProcessPoolExecutor, Client.get_executor()), got {value!r}"
        )
    return value


def check_any(name: str, value: object) -> object:
    return value


check_positive_or_none = partial(check_number, minimum=0, strict=True, optional=True)


def check_concurrency(name: str, value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"{name} must be an int >= 1 (attempts running at once) or None, got {value!r}"
        )
    return value
