"""Helpers for test suites of code that uses opero.

``set_testing(True)`` makes every backoff and rate-limit wait zero while keeping the
number of attempts, so a test of a flaky path runs at full speed::

    from opero.testing import set_testing

    def test_fallback():
        with set_testing():
            assert ask("hi") == "answer from model b"
"""

from __future__ import annotations

from types import TracebackType

from opero.core.clock import CLOCK

__all__ = ["is_testing", "set_testing"]


class set_testing:
    """Turn testing mode on (default) or off; also a context manager that restores the
    previous state on exit.

    In testing mode backoff sleeps and rate-limit waits are skipped; attempts, fallbacks,
    caching and errors are unchanged.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._previous = CLOCK.zero_waits
        CLOCK.zero_waits = bool(enabled)

    def __enter__(self) -> set_testing:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        CLOCK.zero_waits = self._previous


def is_testing() -> bool:
    """True while testing mode is on."""
    return CLOCK.zero_waits
