"""What a limiter is: the interface the drivers talk to.

``reserve(now, costs)`` books the next admission (``costs``: the units the attempt uses
under each limit, None for one each) and returns its time on the monotonic clock (the
caller waits until then); ``release(at)`` gives a booked admission back when its wait was
cancelled; ``peek(now, costs)`` says when an admission booked now would be, without booking
it (the ``"spread"`` fallback strategy and hedging ask it). A limiter that other processes
share may add ``reserve_async``.

A limiter whose ``listens`` is true hears the outcome of every attempt it admitted
(:meth:`Listening.heard`): a limit that learns the server's rate, or one whose costs are
corrected by what a successful attempt really used (``Limit(actual=)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from opero.limit_spec import Limit

__all__ = ["Limiter", "Listening"]


class Limiter(Protocol):
    """Books admissions of attempts."""

    limits: tuple[Limit, ...]  #: its fixed limits (a learning limiter: none)
    #: whether :meth:`Listening.heard` is to be called after each attempt it admitted
    listens: bool

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float: ...
    def release(self, at: float) -> None: ...
    def peek(self, now: float, costs: Sequence[float] | None = None) -> float: ...


class Listening(Protocol):
    """A limiter that learns from the outcomes of the attempts it admitted."""

    def heard(
        self, ok: bool, outcome: object, costs: Sequence[float] | None, sent: float | None
    ) -> None:
        """An attempt this limiter admitted ended: ``ok`` with its result, or not with its
        exception; ``costs``: the units booked for it per limit (None: one each); ``sent``:
        when it was admitted (``CLOCK.monotonic()``; None: not known)."""
