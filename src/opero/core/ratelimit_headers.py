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

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from opero.core.signals import _duration, _get, _header, _rfc3339

__all__ = ["Pace", "headers_of_result", "pace_of"]


class Pace(NamedTuple):
    """``spacing``: seconds between admissions so the requests left last until the reset
    (``reset / (remaining + 1)``); ``reset``: seconds until the limit resets; ``remaining``:
    the requests left until then."""

    spacing: float
    reset: float
    remaining: int


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


def _pace(remaining: int | None, reset: float | None) -> Pace | None:
    if remaining is None or reset is None or reset <= 0:
        return None
    return Pace(reset / (remaining + 1), reset, remaining)


def pace_of(headers: Any, now: Callable[[], datetime] | None = None) -> Pace | None:
    """The stricter pace the request headers ask for (the larger spacing), or None when
    neither OpenAI's nor Anthropic's pair can be read."""
    if headers is None:
        return None
    try:
        openai = _pace(
            _count(_header(headers, "x-ratelimit-remaining-requests")),
            _duration(_header(headers, "x-ratelimit-reset-requests")),
        )
        anthropic = _pace(
            _count(_header(headers, "anthropic-ratelimit-requests-remaining")),
            _rfc3339(_header(headers, "anthropic-ratelimit-requests-reset"), now),
        )
    except Exception:  # a headers object that fails in some unforeseen way
        return None
    found = [p for p in (openai, anthropic) if p is not None]
    return max(found) if found else None
