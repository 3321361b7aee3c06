"""Validation of every decorator option, once, at decoration time.

This is the only module that knows the defaults and the accepted ranges. A bad value
raises ``ValueError`` or ``TypeError`` naming the option, the value and what is accepted.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from typing import Any

__all__ = ["CACHE_BACKENDS", "DEFAULTS", "RATE_LIMIT_BACKENDS", "Options"]

CACHE_BACKENDS = ("memory", "disk", "redis")
RATE_LIMIT_BACKENDS = ("memory", "redis")
SERIALIZERS = ("pickle", "json")
_PLANNED_BACKENDS: tuple[str, ...] = ()


#: every option and its default; the decorators' signatures repeat these (a test pins them)
DEFAULTS: dict[str, Any] = {
    "cache": True,
    "cache_ttl": 3600,
    "cache_backend": "memory",
    "cache_key": None,
    "cache_namespace": "opero",
    "cache_maxsize": 10_000,
    "cache_dir": None,
    "cache_url": None,
    "cache_serializer": "pickle",
    "retries": 3,
    "backoff_factor": 1.5,
    "min_delay": 0.1,
    "max_delay": 30,
    "retry_on": (Exception,),
    "jitter": True,
    "timeout": None,
    "arg_fallback": None,
    "rate_limit": None,
    "rate_limit_backend": "memory",
    "on_retry": None,
    "on_fallback": None,
    "on_cache_hit": None,
}


class Options:
    """The validated, immutable options of one decorated function."""

    __slots__ = tuple(DEFAULTS)

    cache: bool
    cache_ttl: float | None
    cache_backend: str
    cache_key: Callable[..., Any] | None
    cache_namespace: str
    cache_maxsize: int
    cache_dir: str | os.PathLike[str] | None
    cache_url: str | None
    cache_serializer: str
    retries: int
    backoff_factor: float
    min_delay: float
    max_delay: float
    retry_on: type[BaseException] | tuple[type[BaseException], ...]
    jitter: bool
    timeout: float | None
    arg_fallback: str | None
    rate_limit: float | None
    rate_limit_backend: str
    on_retry: Callable[[Any], object] | None
    on_fallback: Callable[[Any], object] | None
    on_cache_hit: Callable[[Any], object] | None

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise TypeError(
                f"unknown option(s): {', '.join(unknown)}; accepted: {', '.join(DEFAULTS)}"
            )
        for name, default in DEFAULTS.items():
            object.__setattr__(self, name, values.get(name, default))
        self._validate()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"options are frozen: cannot assign to {name!r}")

    def __repr__(self) -> str:
        changed = ", ".join(
            f"{n}={getattr(self, n)!r}" for n, d in DEFAULTS.items() if getattr(self, n) != d
        )
        return f"Options({changed})"

    def _validate(self) -> None:
        _check_bool("cache", self.cache)
        _check_bool("jitter", self.jitter)
        _check_number("cache_ttl", self.cache_ttl, minimum=0, strict=True, optional=True)
        _check_choice("cache_backend", self.cache_backend, CACHE_BACKENDS)
        _check_callable("cache_key", self.cache_key)
        if not isinstance(self.cache_namespace, str) or not self.cache_namespace:
            raise TypeError(
                f"cache_namespace must be a non-empty str, got {self.cache_namespace!r}"
            )
        _check_int("cache_maxsize", self.cache_maxsize, minimum=1)
        if self.cache_dir is not None and not isinstance(self.cache_dir, str | os.PathLike):
            raise TypeError(
                f"cache_dir must be a str or os.PathLike or None, got {self.cache_dir!r}"
            )
        if self.cache_url is not None and not isinstance(self.cache_url, str):
            raise TypeError(f"cache_url must be a str or None, got {self.cache_url!r}")
        _check_choice("cache_serializer", self.cache_serializer, SERIALIZERS)
        _check_int("retries", self.retries, minimum=0)
        _check_number("backoff_factor", self.backoff_factor, minimum=1)
        _check_number("min_delay", self.min_delay, minimum=0)
        _check_number("max_delay", self.max_delay, minimum=0)
        if self.max_delay < self.min_delay:
            raise ValueError(
                f"max_delay must be >= min_delay, got max_delay={self.max_delay!r} "
                f"< min_delay={self.min_delay!r}"
            )
        object.__setattr__(self, "retry_on", _check_retry_on(self.retry_on))
        _check_number("timeout", self.timeout, minimum=0, strict=True, optional=True)
        if self.arg_fallback is not None and (
            not isinstance(self.arg_fallback, str) or not self.arg_fallback.isidentifier()
        ):
            raise TypeError(
                "arg_fallback must be the name of a parameter (str) or None, "
                f"got {self.arg_fallback!r}"
            )
        _check_number("rate_limit", self.rate_limit, minimum=0, strict=True, optional=True)
        _check_choice("rate_limit_backend", self.rate_limit_backend, RATE_LIMIT_BACKENDS)
        for name in ("on_retry", "on_fallback", "on_cache_hit"):
            hook = getattr(self, name)
            _check_callable(name, hook)
            if hook is not None and inspect.iscoroutinefunction(hook):
                raise TypeError(
                    f"{name} must be a plain callable, got the coroutine function {hook!r}; "
                    "hooks are called synchronously (schedule async work from inside the hook)"
                )

    @property
    def retry_types(self) -> tuple[type[BaseException], ...]:
        """``retry_on`` as a tuple of exception types."""
        return self.retry_on if isinstance(self.retry_on, tuple) else (self.retry_on,)


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_number(
    name: str, value: object, *, minimum: float, strict: bool = False, optional: bool = False
) -> None:
    accepted = f"a number {'>' if strict else '>='} {minimum}" + (" or None" if optional else "")
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if math.isnan(value) or value < minimum or (strict and value == minimum) or value == math.inf:
        raise ValueError(f"{name} must be {accepted} (finite), got {value!r}")


def _check_choice(name: str, value: object, accepted: tuple[str, ...]) -> None:
    if value in accepted:
        return
    choices = ", ".join(repr(a) for a in accepted)
    if value in _PLANNED_BACKENDS:
        raise ValueError(
            f"{name}={value!r} is not available in this version of opero; accepted: {choices}"
        )
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {value!r}")


def _check_retry_on(value: object) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise TypeError(
            "retry_on must be an exception type or a non-empty tuple of exception types, "
            f"got {value!r}"
        )
    return types
