"""A per-attempt time limit for sync functions.

Python cannot stop a thread, so a sync attempt with ``timeout=`` runs on a daemon helper
thread: when it overruns, the caller stops waiting and gets ``TimeoutError``; the attempt
runs on, its result is discarded, and interpreter exit does not wait for it. The attempt
sees the caller's ``contextvars`` (a copy of its context). (Async attempts use
``asyncio.timeout`` in the driver and are really cancelled.)
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["call_with_timeout", "timeout_error"]


def timeout_error(name: str, seconds: float, *, deadline: bool = False) -> TimeoutError:
    if deadline:
        return TimeoutError(f"{name}: attempt cut at the call's deadline and abandoned")
    return TimeoutError(f"{name}: attempt exceeded timeout={seconds}s and was abandoned")


def call_with_timeout(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    seconds: float,
    name: str,
    *,
    deadline: bool = False,
) -> Any:
    """``func(*args, **kwargs)`` on a daemon thread; ``TimeoutError`` after ``seconds``."""
    done = threading.Event()
    outcome: list[Any] = []

    def attempt() -> None:
        try:
            outcome.append((True, func(*args, **kwargs)))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            done.set()

    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(attempt,), name=f"opero-timeout:{name}", daemon=True
    ).start()
    if not done.wait(seconds):
        raise timeout_error(name, seconds, deadline=deadline)
    ok, value = outcome[0]
    if ok:
        return value
    raise value
