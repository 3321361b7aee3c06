"""What a successful response says about the requests left before its limit resets.

OpenAI sends ``x-ratelimit-remaining-requests`` and ``x-ratelimit-reset-requests`` (a
duration such as ``6s``, ``1m30s`` or ``20ms``); Anthropic sends
``anthropic-ratelimit-requests-remaining`` and ``anthropic-ratelimit-requests-reset`` (an
RFC 3339 time). Headers are found on ``result.headers`` (httpx, requests and aiohttp
responses, an SDK's raw response) or by the user's ``headers_of(result)``. A value that
cannot be read is ignored, and so is a ``headers_of`` that raises: the call already
succeeded. No HTTP library is imported.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from opero.core.signals import _duration, _get, _header, _rfc3339

__all__ = ["Newest", "Pace", "headers_of_result", "pace_of"]


class Pace(NamedTuple):
    """``remaining`` requests until the limit resets in ``reset`` seconds, as said; ``late``:
    the latest the reset can be for what was said (a reset said to the second may come up
    to a second later: waiting for the reset waits for ``late``)."""

    reset: float
    remaining: int
    late: float

    def left(self, sent: int = 0) -> int:
        """The requests left for attempts not sent yet: ``remaining`` less ``sent`` (the
        attempts sent and not yet heard of, which the server may have counted since)."""
        return max(self.remaining - sent, 0)

    def spacing(self, sent: int = 0) -> float:
        """Seconds between admissions so that the requests left last until the reset."""
        return self.reset / (self.left(sent) + 1)

    def in_micros(self) -> tuple[int, int, int]:
        """``remaining``, ``reset`` and ``late`` (in microseconds), for a server script."""
        return self.remaining, round(self.reset * 1e6), round(self.late * 1e6)


class Newest:
    """Which answers are news. Answers come back out of order: the answer to an attempt
    sent earlier says more remains than the answer, already followed, to one sent later."""

    __slots__ = ("_lock", "sent")

    def __init__(self) -> None:
        self.sent = -math.inf  #: when the attempt whose answer was last followed was sent
        self._lock = threading.Lock()

    def fresh(self, pace: Pace | None, sent: float | None) -> Pace | None:
        """``pace`` unless its attempt was sent before the last one followed (None: not
        known, followed)."""
        if pace is None or sent is None:
            return pace
        with self._lock:
            if sent < self.sent:
                return None
            self.sent = sent
        return pace


def headers_of_result(result: Any, headers_of: Callable[[Any], Any] | None = None) -> Any:
    """The headers of a successful result (None: it has none, or they cannot be had)."""
    if headers_of is not None:
        try:
            return headers_of(result)
        except Exception:
            return None
    if result is None or isinstance(result, str | bytes | int | float | dict | list | tuple):
        return None
    return _get(result, "headers")


def _count(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _pace(remaining: int | None, reset: float | None, late: float | None) -> Pace | None:
    if remaining is None or reset is None or reset <= 0 or late is None:
        return None
    return Pace(reset, remaining, max(late, reset))


def pace_of(headers: Any, now: Callable[[], datetime] | None = None) -> Pace | None:
    """The stricter pace the request headers ask for (the larger spacing), or None when
    neither OpenAI's nor Anthropic's pair can be read."""
    if headers is None:
        return None
    try:
        reset = _header(headers, "x-ratelimit-reset-requests")
        openai = _pace(
            _count(_header(headers, "x-ratelimit-remaining-requests")),
            _duration(reset),
            _duration(reset, late=True),
        )
        reset = _header(headers, "anthropic-ratelimit-requests-reset")
        anthropic = _pace(
            _count(_header(headers, "anthropic-ratelimit-requests-remaining")),
            _rfc3339(reset, now),
            _rfc3339(reset, now, late=True),
        )
    except Exception:  # a headers object that fails in some unforeseen way
        return None
    found = [p for p in (openai, anthropic) if p is not None]
    return max(found, key=Pace.spacing) if found else None
