"""A backend that failed at run time: reported with a warning at most once per minute each,
and :class:`BackendDown` for a backend skipped while it recovers."""

from __future__ import annotations

import threading
import time
import warnings

from loguru import logger

from opero.errors import OperoBackendWarning

__all__ = ["WARN_INTERVAL", "BackendDown", "report_backend_failure", "reset"]

WARN_INTERVAL = 60.0  #: seconds between two warnings about the same backend
_last: dict[str, float] = {}
_lock = threading.Lock()


class BackendDown(Exception):
    """A backend failed recently (already reported); the caller goes on without it."""


def report_backend_failure(backend: str, what: str, exc: BaseException) -> bool:
    """Warn that ``backend`` failed doing ``what``; rate-limited per backend.

    Returns True when a warning was emitted. Always logs at WARNING (the log is disabled
    unless the host enables ``opero``).
    """
    now = time.monotonic()
    with _lock:
        last = _last.get(backend)
        if last is not None and now - last < WARN_INTERVAL:
            return False
        _last[backend] = now
    message = f"opero {backend} backend failed ({what}): {exc!r}; the call ran without it"
    logger.warning(message)
    warnings.warn(message, OperoBackendWarning, stacklevel=2)
    return True


def reset() -> None:
    """Forget past warnings (test helper)."""
    with _lock:
        _last.clear()
