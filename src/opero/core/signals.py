"""What a server said in a failed call: its HTTP status and how long to wait.

Everything is read from the exception's attributes; no HTTP library is imported. Headers come
from ``exc.response.headers`` (httpx, requests, openai, anthropic) or ``exc.headers``
(aiohttp's ``ClientResponseError``), names matched case-insensitively. A value that cannot be
read (bad bytes, negative, not a number, an attribute or property that raises) is ignored and
the next source is read; the user's exception is never replaced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["http_status", "retry_after_of", "should_retry", "transient_status"]

#: statuses the official OpenAI and Anthropic SDKs retry (and every 5xx)
TRANSIENT = frozenset({408, 409, 425, 429})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SCALE = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: the fraction of the seconds of an RFC 3339 time (before its zone)
_FRACTION = re.compile(r":\d\d[.,](\d+)(?:[Zz]|[+-]\d\d:?\d\d)?$")


def _get(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that raises reads as absent
        return None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (``status_code``, ``status`` or
    ``response.status_code``, an int in 100-599), or None."""
    for value in (
        _get(exc, "status_code"),
        _get(exc, "status"),
        _get(_get(exc, "response"), "status_code"),
    ):
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _headers(exc: BaseException) -> Any:
    headers = _get(_get(exc, "response"), "headers")
    if headers is None:
        headers = _get(exc, "headers")
    return headers


def _header(headers: Any, name: str) -> str | None:
    """The value of header ``name`` (lower-case), matched case-insensitively; None when absent
    or unreadable."""
    if headers is None:
        return None
    try:
        value = _lookup(headers, name)
    except Exception:
        return None
    if value is None:
        return None
    try:
        text = value.decode() if isinstance(value, bytes) else str(value)
    except Exception:
        return None
    return text.strip()


def _lookup(headers: Any, name: str) -> Any:
    """Header ``name`` by ``get`` (as given, then Title-Case), else by a case-insensitive
    walk over ``items()``; None when absent."""
    value: Any = None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name)
        if value is None:
            value = getter(name.title())
    if value is None and hasattr(headers, "items"):
        for key, found in headers.items():
            if str(key).lower() == name:
                return found
    return value


def should_retry(exc: BaseException) -> bool | None:
    """The server's ``x-should-retry: true|false`` header, or None."""
    text = _header(_headers(exc), "x-should-retry")
    if text is None:
        return None
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


def transient_status(exc: BaseException) -> bool | None:
    """Whether the failure is worth another attempt of the same value by the HTTP rule:
    ``x-should-retry`` if the server sent it, else 408/409/425/429/5xx are transient and any
    other status is permanent; None when the exception carries no status."""
    status = http_status(exc)
    if status is None:
        return None
    verdict = should_retry(exc)
    if verdict is not None:
        return verdict
    return status in TRANSIENT or status >= 500


def _finite_non_negative(value: float) -> float | None:
    """``value`` if it is a usable delay; None (ignored) if negative, NaN or infinite."""
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return value


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return _finite_non_negative(float(text))
    except ValueError:
        return None


def _http_date(text: str, now: Callable[[], datetime] | None) -> float | None:
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _digit(number: str, unit: float) -> float:
    """The size of the last digit of ``number`` (in ``unit``): ``"1.25"`` -> 0.01."""
    return unit * 10.0 ** -len(number.partition(".")[2])


def _duration(text: str | None, late: bool = False) -> float | None:
    """``1s``, ``6m0s``, ``250ms``, ``1h2m3.5s`` (OpenAI's reset headers) in seconds; with
    ``late``, as late as the last digit allows (``"250ms"`` -> 0.251: a reset said to the
    millisecond may be up to one millisecond later)."""
    if not text:
        return None
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        value = _number(text)  # a bare number of seconds
        return value + _digit(text, 1.0) if late and value is not None else value
    value = _finite_non_negative(sum(float(n) * _SCALE[u] for n, u in parts))
    if late and value is not None:
        number, unit = parts[-1]
        return value + _digit(number, _SCALE[unit])
    return value


def _rfc3339(
    text: str | None, now: Callable[[], datetime] | None, late: bool = False
) -> float | None:
    """Seconds until the RFC 3339 time ``text``; with ``late``, until the end of its last
    digit (``...:05Z`` -> up to a second later, ``...:05.123Z`` -> a millisecond)."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now is not None else datetime.now(UTC)
    seconds = (when - current).total_seconds()
    if late:
        fraction = _FRACTION.search(text)
        seconds += _digit("0." + fraction.group(1) if fraction else "0", 1.0)
    return max(0.0, seconds)


def _exhausted_reset(headers: Any, now: Callable[[], datetime] | None) -> float | None:
    """On a 429: when the exhausted limit resets (OpenAI's and Anthropic's headers)."""
    found: list[float] = []
    for kind in ("requests", "tokens"):
        if _header(headers, f"x-ratelimit-remaining-{kind}") == "0":
            reset = _duration(_header(headers, f"x-ratelimit-reset-{kind}"), late=True)
            if reset is not None:
                found.append(reset)
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if _header(headers, f"anthropic-ratelimit-{kind}-remaining") == "0":
            reset = _rfc3339(_header(headers, f"anthropic-ratelimit-{kind}-reset"), now, late=True)
            if reset is not None:
                found.append(reset)
    return max(found) if found else None


def retry_after_of(exc: BaseException, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds the server asked to wait, or None. Sources, first found wins: a numeric
    ``retry_after`` attribute; ``retry-after-ms``; ``Retry-After`` (digits, or an HTTP date);
    on a 429 without those, the reset of the exhausted limit (``x-ratelimit-reset-*`` whose
    ``x-ratelimit-remaining-*`` is 0, or ``anthropic-ratelimit-*-reset`` whose ``-remaining``
    is 0). Unreadable values are skipped."""
    try:
        return _retry_after(exc, now)
    except Exception:
        return None


def _retry_after(exc: BaseException, now: Callable[[], datetime] | None) -> float | None:
    value = _get(exc, "retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool):
        found = _finite_non_negative(float(value))
        if found is not None:
            return found
    headers = _headers(exc)
    if headers is None:
        return None
    millis = _number(_header(headers, "retry-after-ms"))
    if millis is not None:
        return millis / 1000
    found = _retry_after_header(_header(headers, "retry-after"), now)
    if found is not None:
        return found
    if http_status(exc) == 429:
        return _exhausted_reset(headers, now)
    return None


def _retry_after_header(text: str | None, now: Callable[[], datetime] | None) -> float | None:
    """``Retry-After``: whole seconds, or an HTTP date."""
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(text)
    return _http_date(text, now)
