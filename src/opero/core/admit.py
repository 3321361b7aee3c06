"""Waiting for a rate-limit admission, once sync and once async (every driver does it the
same way): book it through the judge and sleep until it, and on waking sleep on while the
admission moved later meanwhile (a learned rate fell). A caller cancelled or interrupted
while it waits gives its admission back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opero.core.clock import CLOCK

if TYPE_CHECKING:
    from opero.core.call import Call
    from opero.core.judge import Judge

__all__ = ["admit", "admit_async"]


def admit(judge: Judge, call: Call) -> None:
    """Wait on this thread until the next attempt of ``call`` is admitted."""
    booking = judge.book(call)
    while booking is not None:
        try:
            CLOCK.sleep(booking.wait)
        except BaseException:
            judge.unbook(call, booking)
            raise
        judge.slept("rate_limit", booking.wait)
        booking = judge.rebook(call, booking)


async def admit_async(judge: Judge, call: Call) -> None:
    """Wait in this task until the next attempt of ``call`` is admitted."""
    booking = await judge.book_async(call)
    while booking is not None:
        try:
            await CLOCK.async_sleep(booking.wait)
        except BaseException:
            judge.unbook(call, booking)
            raise
        judge.slept("rate_limit", booking.wait)
        booking = judge.rebook(call, booking)
