"""What a limiter is: the interface the drivers talk to.

``reserve(now)`` books the next admission and returns its time on the monotonic clock (the
caller waits until then); ``release(at)`` gives a booked admission back when its wait was
cancelled. A limiter that other processes share may add ``reserve_async``.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Limiter"]


class Limiter(Protocol):
    """Books admissions of attempts."""

    def reserve(self, now: float) -> float: ...
    def release(self, at: float) -> None: ...
