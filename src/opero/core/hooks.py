"""Payloads of the observability hooks and the helper that calls a hook safely."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

__all__ = [
    "AttemptDetails",
    "BreakerDetails",
    "CacheHitDetails",
    "FallbackDetails",
    "GiveUpDetails",
    "RetryDetails",
    "WaitDetails",
    "fire",
]


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """Passed to ``on_retry`` once per failed round that will be retried."""

    name: str  #: qualified name of the decorated function
    round: int  #: the round that just failed (1-based)
    rounds: int  #: rounds allowed in all (``retries + 1``)
    delay: float  #: seconds opero will wait before the next round
    error: BaseException  #: the last exception of the failed round


@dataclass(frozen=True, slots=True)
class FallbackDetails:
    """Passed to ``on_fallback`` once per move to the next fallback value."""

    name: str
    param: str  #: the ``arg_fallback`` parameter
    failed_value: Any  #: the value whose attempt just failed
    next_value: Any  #: the value tried next
    round: int
    error: BaseException


@dataclass(frozen=True, slots=True)
class CacheHitDetails:
    """Passed to ``on_cache_hit`` when a call is answered from the cache."""

    name: str
    backend: str  #: ``"memory"`` or ``"disk"``
    key: Any  #: the cache key that was hit


@dataclass(frozen=True, slots=True)
class AttemptDetails:
    """Passed to ``on_attempt`` before every attempt. The hook may return a context
    manager: it is entered around the attempt and told its outcome through ``__exit__``
    (the attempt's exception, or a ``RejectedResultError`` for a rejected result)."""

    name: str
    round: int  #: 1-based
    value: Any  #: the fallback value of this attempt (None without fallback)
    attempt: int  #: this call's attempt number, 1-based


@dataclass(frozen=True, slots=True)
class WaitDetails:
    """Passed to ``on_wait`` when a wait before an attempt is over."""

    name: str
    reason: str  #: ``"rate_limit"``, ``"concurrency"``, ``"pause"`` or ``"backoff"``
    seconds: float


@dataclass(frozen=True, slots=True)
class GiveUpDetails:
    """Passed to ``on_give_up`` once per call that ends with an exception."""

    name: str
    error: BaseException  #: what the call raises
    attempts: int  #: attempts the call made


@dataclass(frozen=True, slots=True)
class BreakerDetails:
    """Passed to ``on_breaker`` when a value's cooldown breaker opens or closes."""

    name: str
    value: str | None  #: the fallback value's repr (None: the function itself)
    opened: bool  #: True: opened (the value is skipped); False: closed again


def call_hook(hook: Callable[[Any], object], payload: object) -> object:
    """``hook(payload)``'s return value; an exception from the hook is logged, None returned."""
    try:
        return hook(payload)
    except Exception as exc:
        logger.opt(exception=exc).warning("opero hook {!r} raised; ignored", hook)
        return None


def fire(hook: Callable[[Any], object] | None, payload: object) -> None:
    """Call ``hook(payload)``; an exception from the hook is logged and ignored."""
    if hook is None:
        return
    try:
        hook(payload)
    except Exception as exc:
        logger.opt(exception=exc).warning("opero hook {!r} raised; ignored", hook)
