"""A backend that failed at run time: reported with a warning at most once per minute each,
and :class:`BackendDown` for a backend skipped while it recovers."""

from __future__ import annotations

import sys
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


def report_backend_failure(
    backend: str,
    what: str,
    exc: BaseException,
    *,
    name: str | None = None,
    location: str | None = None,
    hide: tuple[str, ...] = (),
) -> bool:
    """Warn that ``backend`` failed doing ``what``; rate-limited per backend.

    The warning names the decorated function (``name``) and where the backend is
    (``location``), masks every string of ``hide`` (secrets), and points at the user's call.
    Returns True when a warning was emitted. Always logs at WARNING (the log is disabled
    unless the host enables ``opero``).
    """
    now = time.monotonic()
    with _lock:
        last = _last.get(backend)
        if last is not None and now - last < WARN_INTERVAL:
            return False
        _last[backend] = now
    where = f" at {location}" if location else ""
    whose = f" for {name}" if name else ""
    message = (
        f"opero {backend} backend failed ({what}{where}){whose}: {exc!r}; the call ran without it"
    )
    for secret in hide:
        if secret:
            message = message.replace(secret, "***")
    logger.warning(message)
    warnings.warn(message, OperoBackendWarning, stacklevel=_user_level())
    return True


def _user_level() -> int:
    """The ``stacklevel`` of the first frame outside opero (the user's call)."""
    package = __file__.rsplit("/core/", 1)[0]
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def reset() -> None:
    """Forget past warnings (test helper)."""
    with _lock:
        _last.clear()
