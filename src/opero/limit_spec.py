"""Rate limits as APIs publish them: a number, ``"N/minute"``, a weighted :class:`Limit`, a list.

``rate_limit=10`` is ten attempts per second; ``"500/minute"`` the same as ``500/60``, and
``"300/6s"`` (a number of periods) 300 attempts in any six seconds;
``Limit("30000/minute", cost=count_tokens)`` admits 30 000 units a minute, each attempt using
``count_tokens(*args, **kwargs)`` of them; a list holds several limits, and an attempt starts
only when every one admits it. :func:`limits_of` turns any of these into a tuple of
:class:`Limit`; :func:`cost_of` asks a weighted limit what one attempt costs.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

__all__ = [
    "MIN_RATE",
    "PERIODS",
    "Limit",
    "RateLimit",
    "cost_of",
    "limits_of",
    "per_second",
    "rate_and_period",
]

MIN_RATE = 1 / 86_400  #: the slowest rate limit accepted: one call per day
#: period names accepted in rate strings, in seconds
PERIODS = {
    "second": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "min": 60,
    "m": 60,
    "hour": 3600,
    "h": 3600,
}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_TEXT = re.compile(rf"^\s*({_NUMBER})\s*/\s*({_NUMBER})?\s*([a-z]+)\s*$")


def per_second(value: object, name: str = "rate_limit") -> float:
    """A rate (a number per second, or ``"N/period"``) in units per second."""
    return rate_and_period(value, name)[0]


def rate_and_period(value: object, name: str = "rate_limit") -> tuple[float, float]:
    """A rate in units per second, and the period it was given for in seconds (1 for a
    number): ``"300/6s"`` is ``(50.0, 6.0)``, ``"500/minute"`` ``(8.33.., 60.0)``."""
    if isinstance(value, str):
        rate, period = _read_text(value, name)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        rate, period = float(value), 1.0
    else:
        raise TypeError(
            f"{name} must be a number per second, a string like '500/minute', an "
            f"opero.Limit or a list of them, got {value!r}"
        )
    if not rate > 0 or math.isinf(rate):
        raise ValueError(f"{name} must be a finite rate > 0, got {value!r}")
    if rate < MIN_RATE:
        raise ValueError(
            f"{name} must be at least one call per day ({MIN_RATE:.3g} per second), got {value!r}"
        )
    return rate, period


def _read_text(value: str, name: str) -> tuple[float, float]:
    """``"N/period"`` as (units per second, the period in seconds)."""
    found = _TEXT.match(value.lower())
    if found is None or found.group(3) not in PERIODS:
        periods = ", ".join(sorted(set(PERIODS), key=lambda p: (PERIODS[p], p)))
        raise ValueError(
            f"{name}: cannot read {value!r}; write a number per second or 'N/period' "
            f"with a period of {periods}, optionally a number of them "
            f"(e.g. '500/minute', '300/6s', '10/5min')"
        )
    period = float(found.group(2) or 1) * PERIODS[found.group(3)]
    if not period > 0 or math.isinf(period):
        raise ValueError(f"{name} must have a period > 0, got {value!r}")
    return float(found.group(1)) / period, period


class Limit:
    """One rate limit: ``rate`` units per second (a number, or a string like
    ``"30000/minute"``), each attempt using ``cost(*args, **kwargs)`` units (1 without
    ``cost``). ``cost`` gets the arguments of the attempt as the function gets them (the
    fallback value of that attempt in place) and returns a number >= 0. ``actual``, if given,
    gets the result of a successful attempt and returns the units it really used (an LLM
    answer's ``usage.total_tokens``): the schedule is moved by the difference.

    ``period`` is the period the rate was given for (``"30000/minute"``: 60 s; a number: 1 s).
    Among several limits on one attempt it is how far a limit may catch up time it lost
    waiting for another: never more than ``rate * period`` units in any window of it."""

    __slots__ = ("actual", "cost", "given", "period", "rate")

    def __init__(
        self,
        rate: float | str,
        cost: Callable[..., float] | None = None,
        actual: Callable[[Any], float] | None = None,
    ) -> None:
        self.rate, self.period = rate_and_period(rate, "Limit(rate)")
        self.given = rate
        if cost is not None:
            if not callable(cost):
                raise TypeError(f"Limit(cost=) must be a callable, got {cost!r}")
            if inspect.iscoroutinefunction(cost):
                raise TypeError(
                    "Limit(cost=) must be a plain function: it runs before every attempt to "
                    f"book its admission, got the coroutine function {cost!r}"
                )
        self.cost = cost
        if actual is not None and not callable(actual):
            raise TypeError(f"Limit(actual=) must be a callable, got {actual!r}")
        self.actual = actual

    def __repr__(self) -> str:
        cost = "" if self.cost is None else f", cost={getattr(self.cost, '__name__', self.cost)}"
        return f"Limit({self.given!r}{cost})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limit):
            return NotImplemented
        mine = (self.rate, self.period, self.cost, self.actual)
        return mine == (other.rate, other.period, other.cost, other.actual)

    def __hash__(self) -> int:
        return hash((self.rate, self.period, id(self.cost), id(self.actual)))


RateLimit: TypeAlias = float | str | Limit | Sequence[float | str | Limit]


def limits_of(value: object, name: str = "rate_limit") -> tuple[Limit, ...] | None:
    """``rate_limit`` in any accepted form as a tuple of :class:`Limit` (None: no limit)."""
    if value is None:
        return None
    if isinstance(value, Limit):
        return (value,)
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError(f"{name}: an empty list of limits; give at least one, or None")
        out: list[Limit] = []
        for entry in value:
            if isinstance(entry, list | tuple):
                raise TypeError(f"{name}: a list of limits cannot hold a list, got {entry!r}")
            found = limits_of(entry, name)
            assert found is not None
            out.extend(found)
        return tuple(out)
    per_second(value, name)  # refused with this option's name
    assert isinstance(value, int | float | str)
    return (Limit(value),)


def cost_of(limit: Limit, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    """The units one attempt uses under ``limit``; its cost function's own error, or a
    ``TypeError``/``ValueError`` for a value that is not a number >= 0 (both end the call
    without a retry: another attempt would cost the same)."""
    if limit.cost is None:
        return 1.0
    cost = limit.cost(*args, **kwargs)
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        raise TypeError(
            f"the cost function of {limit!r} must return a number of units, got {cost!r}"
        )
    if not cost >= 0 or math.isinf(cost):
        raise ValueError(
            f"the cost function of {limit!r} must return a finite number >= 0, got {cost!r}"
        )
    return float(cost)
