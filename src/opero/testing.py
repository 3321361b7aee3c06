"""Helpers for test suites of code that uses opero.

``set_testing(True)`` makes every backoff and rate-limit wait zero while keeping the
number of attempts, so a test of a flaky path runs at full speed::

    from opero.testing import set_testing

    def test_fallback():
        with set_testing():
            assert ask("hi") == "answer from model b"

    @set_testing()              # or as a decorator of a test, sync or async
    async def test_retries():
        ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from opero.core.clock import CLOCK

__all__ = ["is_testing", "set_testing"]

F = TypeVar("F", bound=Callable[..., Any])


class set_testing:
    """Turn testing mode on (default) or off at once; also a context manager that restores
    the previous state on exit, and a decorator of test functions (sync or async) that
    undoes the switch at once and applies it only while each call runs.

    In testing mode backoff sleeps and rate-limit waits are skipped; attempts, fallbacks,
    caching and errors are unchanged.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._enabled = bool(enabled)
        self._previous = CLOCK.zero_waits
        CLOCK.zero_waits = self._enabled

    def __call__(self, fn: F) -> F:
        CLOCK.zero_waits = self._previous  # as a decorator: only while a call runs
        enabled = self._enabled

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                previous, CLOCK.zero_waits = CLOCK.zero_waits, enabled
                try:
                    return await fn(*args, **kwargs)
                finally:
                    CLOCK.zero_waits = previous

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            previous, CLOCK.zero_waits = CLOCK.zero_waits, enabled
            try:
                return fn(*args, **kwargs)
            finally:
                CLOCK.zero_waits = previous

        return run  # type: ignore[return-value]

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
