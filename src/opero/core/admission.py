"""Admission of one attempt: its concurrency slot and its rate-limit booking.

A mixin of :class:`~opero.core.pipeline.Pipeline` (which sets ``limiter``, ``limits``,
``weighted``, ``async_limiter``, ``counters`` and ``name``): the drivers ask it before each
attempt, and only they wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loguru import logger

from opero.core.clock import CLOCK
from opero.rates import Limit, cost_of

if TYPE_CHECKING:
    from opero.core.stats import Counters
    from opero.limits.concurrency import Slots

__all__ = ["Admission"]


class Admission:
    """Cost, rate-limit booking and concurrency slots of an attempt."""

    limiter: Any
    limits: tuple[Limit, ...]
    weighted: bool
    async_limiter: bool
    counters: Counters
    name: str

    def _costs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[float] | None:
        """What this attempt uses under each limit (None: one unit each)."""
        if not self.weighted:
            return None
        return [cost_of(limit, args, kwargs) for limit in self.limits]

    def _reserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, float] | None:
        """Book a rate-limit slot: ``(admission time, seconds to wait)``, or None if free."""
        limiter = self.limiter
        if limiter is None:
            return None
        costs = self._costs(args, kwargs)
        if CLOCK.zero_waits:
            return None
        now = CLOCK.monotonic()
        at = limiter.reserve(now, costs)
        if at <= now:
            return None
        logger.debug("{}: rate limit, waiting {:.3f}s", self.name, at - now)
        self.counters.waited(at - now)
        return at, at - now

    async def _reserve_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[float, float] | None:
        if not self.async_limiter:
            return self._reserve(args, kwargs)
        costs = self._costs(args, kwargs)
        if CLOCK.zero_waits:
            return None
        now = CLOCK.monotonic()
        at = await self.limiter.reserve_async(now, costs)
        if at <= now:
            return None
        logger.debug("{}: rate limit, waiting {:.3f}s", self.name, at - now)
        self.counters.waited(at - now)
        return at, at - now

    def _acquire(self, slots: Slots) -> None:
        started = CLOCK.monotonic()
        slots.acquire()
        waited = CLOCK.monotonic() - started
        if waited > 0:
            self.counters.waited(waited)

    async def _acquire_async(self, slots: Slots) -> None:
        started = CLOCK.monotonic()
        await slots.acquire_async()
        waited = CLOCK.monotonic() - started
        if waited > 0:
            self.counters.waited(waited)
