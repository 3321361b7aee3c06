"""A backend that failed at run time: reported with a warning at most once per minute for
each backend location (each directory, each server), and :class:`BackendDown` for a backend
skipped while it recovers. A report shows at most a few hundred characters of any value."""

from __future__ import annotations

import sys
import threading
import time
import warnings

from loguru import logger

from opero.errors import OperoBackendWarning

__all__ = ["SHOWN", "WARN_INTERVAL", "BackendDown", "report_backend_failure", "reset", "shorten"]

WARN_INTERVAL = 60.0  #: seconds between two warnings about the same backend location
SHOWN = 300  #: the most characters of an error's text a report shows
_last: dict[tuple[str, str], float] = {}
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
    """Warn that ``backend`` failed doing ``what``; rate-limited per backend and location.

    The warning names the decorated function (``name``) and where the backend is
    (``location``), masks every string of ``hide`` (secrets), and points at the user's call.
    Returns True when a warning was emitted. Always logs at WARNING (the log is disabled
    unless the host enables ``opero``).
    """
    now = time.monotonic()
    which = (backend, location or "")
    with _lock:
        last = _last.get(which)
        if last is not None and now - last < WARN_INTERVAL:
            return False
        _last[which] = now
    detail = repr(exc)
    for secret in hide:  # before shortening, which could cut a secret in two
        if secret:
            detail = detail.replace(secret, "***")
    where = f" at {location}" if location else ""
    whose = f" for {name}" if name else ""
    message = (
        f"opero {backend} backend failed ({what}{where}){whose}: {shorten(detail)}; "
        "the call ran without it"
    )
    for secret in hide:
        if secret:
            message = message.replace(secret, "***")
    logger.warning(message)
    warnings.warn(message, OperoBackendWarning, stacklevel=_user_level())
    return True


def shorten(text: str, limit: int = SHOWN) -> str:
    """``text`` cut to about ``limit`` characters: its start and its end (where an error's
    reason usually is), and how long it was."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail]} ...[{len(text):,} characters]... {text[-tail:]}"


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
