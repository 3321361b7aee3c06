"""What users write to say how attempts are judged: a retry budget, and the values to fall
back through (typed as one value, so type checkers accept them where one value goes)."""

from __future__ import annotations

import math
from typing import TypeVar

__all__ = ["Fallbacks", "RetryBudget", "fallback"]

T = TypeVar("T")


class RetryBudget:
    """Retries of a decorated function, across all its callers and map workers, are capped
    at ``ratio`` x the calls made in the last ``window`` seconds plus ``minimum`` retries a
    second (a reserve of ``minimum * window`` from the start, so a lone failing call still
    makes its retries). When it is spent, a failed round is not retried."""

    __slots__ = ("minimum", "ratio", "window")

    def __init__(self, ratio: float = 0.2, minimum: float = 10, window: float = 10) -> None:
        _check("ratio", ratio, 0, 1, "a number from 0 to 1")
        _check("minimum", minimum, 0, math.inf, "a number >= 0")
        _check("window", window, 0, math.inf, "a number > 0", strict=True)
        self.ratio = float(ratio)
        self.minimum = float(minimum)
        self.window = float(window)

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self.ratio}, minimum={self.minimum}, window={self.window})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryBudget):
            return NotImplemented
        return (self.ratio, self.minimum, self.window) == (other.ratio, other.minimum, other.window)

    def __hash__(self) -> int:
        return hash((self.ratio, self.minimum, self.window))


def _check(
    name: str, value: object, low: float, high: float, accepted: str, *, strict: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"RetryBudget {name} must be {accepted}, got {value!r}")
    if math.isnan(value) or value < low or value > high or (strict and value == low):
        raise ValueError(f"RetryBudget {name} must be {accepted}, got {value!r}")
    if value == math.inf:
        raise ValueError(f"RetryBudget {name} must be finite, got {value!r}")


class Fallbacks(tuple):  # type: ignore[type-arg]
    """The values :func:`fallback` marks: a tuple, tried in order like any tuple value of
    the ``arg_fallback`` parameter (and the same cache key as a plain tuple of them)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"fallback({', '.join(map(repr, self))})"


def fallback(*values: T) -> T:
    """Mark ``values`` as the fallback values of the ``arg_fallback`` parameter: each is
    tried in order, and the function receives one of them per attempt.

    Typed as one value of their type, so ``model: str = fallback("big", "small")`` and
    ``ask("hi", model=fallback("a", "b"))`` type-check where a ``str`` goes.
    """
    if not values:
        raise ValueError("fallback() needs at least one value to try")
    return Fallbacks(values)  # type: ignore[return-value]
