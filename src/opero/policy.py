"""What users write to say how attempts are judged: a retry budget, a rate limit that learns
(:class:`Adaptive`), and the values to fall back through (typed as one value, so type
checkers accept them where one value goes)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opero.limit_spec import per_second

__all__ = ["Adaptive", "Fallbacks", "RetryBudget", "fallback"]

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


class Adaptive:
    """A rate limit that learns what the server accepts: it starts at ``start`` (a rate:
    a number per second or ``"N/minute"``-style text), lowers the rate by ``decrease``
    (x 0.7) on each throttling signal (a 429, or a failure carrying a server-directed
    delay; one burst of them counts once) and raises it again on successes along a CUBIC
    curve (scaling constant ``scale``, 0.4), never above ``max`` (None: no ceiling) nor
    below ``min``. Successful results that carry rate-limit headers (``x-ratelimit-*``,
    ``anthropic-ratelimit-*``; found on ``result.headers`` or by ``headers_of(result)``)
    spread the requests that remain evenly until the reset."""

    __slots__ = ("decrease", "given", "headers_of", "max", "min", "scale", "start")

    def __init__(
        self,
        start: float | str = "1/s",
        max: float | str | None = None,
        min: float | str = "1/minute",
        *,
        headers_of: Callable[[Any], Mapping[str, str] | None] | None = None,
        decrease: float = 0.7,
        scale: float = 0.4,
    ) -> None:
        self.given = (start, max, min)
        self.start, self.max, self.min = _rates(start, max, min)
        if not 0 < _number("decrease", decrease) < 1:
            raise ValueError(f"Adaptive(decrease=) must be between 0 and 1, got {decrease!r}")
        if not _number("scale", scale) > 0 or math.isinf(scale):
            raise ValueError(f"Adaptive(scale=) must be a finite number > 0, got {scale!r}")
        if headers_of is not None and not callable(headers_of):
            raise TypeError(f"Adaptive(headers_of=) must be a callable, got {headers_of!r}")
        self.decrease = float(decrease)
        self.scale = float(scale)
        self.headers_of = headers_of

    def __repr__(self) -> str:
        start, top, bottom = self.given
        return f"Adaptive(start={start!r}, max={top!r}, min={bottom!r})"


def _rates(
    start: float | str, top: float | str | None, bottom: float | str
) -> tuple[float, float | None, float]:
    """An :class:`Adaptive` limit's start, ceiling and floor in calls a second, checked."""
    first = per_second(start, "Adaptive(start)")
    ceiling = None if top is None else per_second(top, "Adaptive(max)")
    floor = per_second(bottom, "Adaptive(min)")
    if ceiling is not None and ceiling < first:
        raise ValueError(f"Adaptive: max={top!r} is below start={start!r}")
    if floor > first:
        raise ValueError(f"Adaptive: min={bottom!r} is above start={start!r}")
    return first, ceiling, floor


def _number(name: str, value: object) -> float:
    """``value``, a number (not a bool), or a TypeError naming the ``Adaptive`` parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Adaptive({name}=) must be a number, got {value!r}")
    return value
