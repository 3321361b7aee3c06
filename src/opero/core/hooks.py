"""Payloads of the observability hooks and the helper that calls a hook safely."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

__all__ = ["CacheHitDetails", "FallbackDetails", "RetryDetails", "fire"]


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


def fire(hook: Callable[[Any], object] | None, payload: object) -> None:
    """Call ``hook(payload)``; an exception from the hook is logged and ignored."""
    if hook is None:
        return
    try:
        hook(payload)
    except Exception as exc:
        logger.opt(exception=exc).warning("opero hook {!r} raised; ignored", hook)
