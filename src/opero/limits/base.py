"""What a limiter is: the interface the drivers talk to.

``reserve(now, costs)`` books the next admission (``costs``: the units the attempt uses
under each limit, None for one each) and returns its time on the monotonic clock (the
caller waits until then); ``release(at)`` gives a booked admission back when its wait was
cancelled. A limiter that other processes share may add ``reserve_async``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Limiter"]


class Limiter(Protocol):
    """Books admissions of attempts."""

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float: ...
    def release(self, at: float) -> None: ...
