"""What happened to one decorated function: ``stats()`` and ``cache_info()``.

Counting must cost next to nothing on the hot paths, so each path bumps one plain integer
and the snapshot derives the rest: a call whose first attempt was made on a plain fast path
is one ``direct`` count, which is also its first attempt and, unless the judge counted it in
``direct_failed``, its success. Calls and cache hits are counted where a call enters;
attempts and their outcomes only by the judge. Integer ``+=`` on a slot runs no Python code
between its read and its write, so under the GIL no count is lost between threads; the
per-value success table takes a lock.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["CacheInfo", "Counters", "Stats", "success_key"]

#: ``functools.lru_cache``'s ``cache_info()`` shape
CacheInfo = namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])

MAX_KEYS = 1000  #: distinct fallback values counted by name; the rest under "<other>"
MAX_ERRORS = 100  #: distinct kinds of failure counted by name; the rest under "<other>"
OTHER = "<other>"


@dataclass(frozen=True)
class Stats:
    """A snapshot of one decorated function's counts since decoration."""

    calls: int = 0  #: calls (cache hits included; in a map, each item is a call)
    cache_hits: int = 0
    attempts: int = 0  #: attempts started
    failures: int = 0  #: attempts that failed
    retries: int = 0  #: rounds retried
    #: successful attempts by the ``repr`` of their fallback value (``None``: no fallback)
    successes: Mapping[str | None, int] = field(default_factory=dict)
    pauses: int = 0  #: server-directed pauses set
    cooldowns: int = 0  #: breakers opened
    wait: float = 0.0  #: seconds waited before attempts (rate limits, concurrency, pauses)
    rejected: int = 0  #: results rejected by ``retry_on_result`` (each also a failure)
    budget_refusals: int = 0  #: retries refused because the retry budget was spent
    deadlines: int = 0  #: calls that ended with ``DeadlineExceededError``
    hedges: int = 0  #: hedged attempts started (``hedge=``)
    hedge_wins: int = 0  #: hedged attempts whose result was the call's
    #: failed attempts by kind: the exception's class name, with its HTTP status if it has one
    errors: Mapping[str, int] = field(default_factory=dict)
    #: the rate an ``Adaptive`` limit has learned (per second): one number, or by the
    #: ``repr`` of each fallback value with a learning budget of its own; None without one
    learned_rate: float | Mapping[str, float] | None = None


def success_key(value: Any, fallback: bool) -> str | None:
    """The ``successes`` key of an attempt made with fallback ``value``."""
    if not fallback:
        return None
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__}>"


class Counters:
    """The live counts behind :class:`Stats` (see the module docstring)."""

    __slots__ = (
        "_errors",
        "_lock",
        "_successes",
        "attempts",
        "budget_refusals",
        "cooldowns",
        "deadlines",
        "direct",
        "direct_failed",
        "entered",
        "failures",
        "hedge_wins",
        "hedges",
        "hits",
        "hits_base",
        "misses_base",
        "pauses",
        "plain_ok",
        "rejected",
        "retries",
        "wait",
    )

    def __init__(self) -> None:
        self.hits = 0  #: cache hits
        self.entered = 0  #: calls past the cache lookup, not on the direct path
        self.direct = 0  #: calls whose first attempt was made directly
        self.direct_failed = 0  #: ... whose first attempt then failed
        self.attempts = 0  #: attempts other than direct first attempts
        self.plain_ok = 0  #: successful attempts with no fallback in play (lock-free count)
        self.failures = 0
        self.retries = 0
        self.pauses = 0
        self.cooldowns = 0
        self.wait = 0.0
        self.rejected = 0
        self.budget_refusals = 0
        self.deadlines = 0
        self.hedges = 0
        self.hedge_wins = 0
        self.hits_base = 0  #: cache_info() counts from the last cache_clear()
        self.misses_base = 0
        self._successes: dict[str | None, int] = {}
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()

    def success(self, key: str | None) -> None:
        with self._lock:
            table = self._successes
            if key not in table and len(table) >= MAX_KEYS:
                key = OTHER
            table[key] = table.get(key, 0) + 1

    def error(self, kind: str) -> None:
        """A failed attempt of this kind (at most :data:`MAX_ERRORS` kinds by name)."""
        with self._lock:
            table = self._errors
            if kind not in table and len(table) >= MAX_ERRORS:
                kind = OTHER
            table[kind] = table.get(kind, 0) + 1

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.wait += seconds

    def snapshot(self) -> Stats:
        with self._lock:
            successes = dict(self._successes)
            errors = dict(self._errors)
        direct_ok = self.direct - self.direct_failed + self.plain_ok
        if direct_ok:
            successes[None] = successes.get(None, 0) + direct_ok
        return Stats(
            calls=self.hits + self.entered + self.direct,
            cache_hits=self.hits,
            attempts=self.direct + self.attempts,
            failures=self.failures,
            retries=self.retries,
            successes=MappingProxyType(successes),
            pauses=self.pauses,
            cooldowns=self.cooldowns,
            wait=self.wait,
            rejected=self.rejected,
            budget_refusals=self.budget_refusals,
            deadlines=self.deadlines,
            hedges=self.hedges,
            hedge_wins=self.hedge_wins,
            errors=MappingProxyType(errors),
        )

    def cache_info(self, maxsize: int | None, currsize: int | None) -> CacheInfo:
        misses = self.entered + self.direct - self.misses_base
        return CacheInfo(self.hits - self.hits_base, misses, maxsize, currsize)

    def cleared(self) -> None:
        """``cache_clear()``: ``cache_info()`` counts start over (``stats()`` do not)."""
        self.hits_base = self.hits
        self.misses_base = self.entered + self.direct
