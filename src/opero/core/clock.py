"""The one place where opero reads the time and waits.

Drivers look up ``CLOCK.monotonic``, ``CLOCK.sleep`` and ``CLOCK.async_sleep`` at the
moment they need them, so tests (and :mod:`opero.testing`) can replace them without
sleeping for real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["CLOCK", "Clock"]


class Clock:
    """Mutable holder of the time functions the drivers use."""

    def __init__(self) -> None:
        self.monotonic: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], None] = time.sleep
        self.async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        #: set by :func:`opero.testing.set_testing`: backoff and rate-limit waits become zero
        self.zero_waits = False

    def reset(self) -> None:
        """Restore the real clock (test helper)."""
        self.__init__()  # type: ignore[misc]


CLOCK = Clock()
