"""Scripted functions and the reference model for ``tests/test_one_judge.py``.

Module level, so process workers load the functions by name. A script says what each attempt
of one call does: attempt ``n`` (0-based, counted per item over rounds and fallback values)
plays ``steps[min(n, len(steps) - 1)]``. A step is one outcome code, or codes separated by
``|`` chosen by the fallback value's position in :data:`VALUES` (``"404|ok"``: value ``"a"``
gets a 404, value ``"b"`` succeeds; without fallback the value is ``"a"``). Codes:

- ``ok``: return ``"<item>:<value>:<n>"``
- ``E``: ``ValueError`` (no HTTP status: transient under the default ``retry_on``)
- ``T``: ``TypeError`` raised inside the function (the call's arguments fit)
- ``K``: ``KeyError``
- ``503``/``404``: :class:`HTTPError` with that ``status_code`` (transient / permanent)
- ``R``: :class:`HTTPError` 429 with ``retry_after=1.0`` (a server-directed pause)
- ``S``: :class:`HTTPError` 404 with the header ``x-should-retry: true`` (transient after all)
- ``U``: :class:`HTTPError` 503 holding a lock: it cannot be pickled as it is
- ``X``: :class:`Halt`, a ``BaseException`` (never retried, ends a map)

The item is the script's name. Attempts are counted per item under ``log``, an argument:
a directory (a file per item: worker processes count there too) or ``"mem:<name>"`` (in this
process's memory, cheaper, for threads and tasks). A new script is one line in
:data:`SCRIPTS`; a new outcome code, a line in :func:`make` and what :func:`model` does with it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

VALUES = ("a", "b")  #: the fallback values of the ``list`` fallback

SCRIPTS: dict[str, tuple[str, ...]] = {
    "ok": ("ok",),
    "first_fails": ("E", "ok"),
    "two_fail": ("E", "E", "ok"),
    "always": ("E",),
    "503_then_ok": ("503", "ok"),
    "503_always": ("503",),
    "404": ("404",),  # permanent on the first attempt
    "404_later": ("E", "404", "ok"),  # permanent only on a later attempt
    "a404_b_ok": ("404|ok",),
    "a404_b_fails": ("404|E",),
    "a503_b_ok": ("503|ok",),
    "typeerror_then_ok": ("T", "ok"),
    "foreign": ("K",),  # outside retry_on=(ValueError, HTTPError) and the predicate
    "foreign_later": ("E", "K", "ok"),
    "should_retry_then_ok": ("S", "ok"),
    "unpicklable_then_ok": ("U", "ok"),
    "unpicklable_always": ("U",),
    "paused_then_ok": ("R", "ok"),
    "a_paused_b_ok": ("R|ok",),
    "halt": ("X",),
    "halt_later": ("E", "X"),
}


class HTTPError(Exception):
    """An HTTP-like failure: the library reads ``status_code`` and ``retry_after``."""

    def __init__(self, status_code: int, where: str, retry_after: float | None = None) -> None:
        super().__init__(status_code, where)
        self.status_code = status_code
        if retry_after is not None:
            self.retry_after = retry_after


class Halt(BaseException):
    """Not an ``Exception``: like ``SystemExit``, it ends the call (and a map) at once."""


def make(code: str, where: str) -> BaseException:
    if code == "E":
        return ValueError(where)
    if code == "T":
        return TypeError(where)
    if code == "K":
        return KeyError(where)
    if code == "R":
        return HTTPError(429, where, retry_after=1.0)
    if code == "X":
        return Halt(where)
    if code == "S":
        exc = HTTPError(404, where)
        exc.headers = {"x-should-retry": "true"}
        return exc
    if code == "U":
        exc = HTTPError(503, where)
        exc.lock = threading.Lock()
        return exc
    return HTTPError(int(code), where)


def codes(script: str) -> set[str]:
    return {c for step in SCRIPTS[script] for c in step.split("|")}


def code_of(script: str, n: int, value: object) -> str:
    """The outcome code of attempt ``n`` of ``script`` made with fallback ``value``."""
    steps = SCRIPTS[script]
    choices = steps[min(n, len(steps) - 1)].split("|")
    position = VALUES.index(value) if value in VALUES else 0
    return choices[min(position, len(choices) - 1)]


_counts: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()
_fresh = itertools.count()


def fresh_log() -> str:
    """A new in-memory ``log``: every item's attempts counted from 0."""
    return f"mem:{next(_fresh)}"


def count_attempt(log: str, item: str) -> int:
    """This attempt's number for ``item`` (attempts of one item never run at once)."""
    if log.startswith("mem:"):
        with _lock:
            _counts[log, item] += 1
            return _counts[log, item] - 1
    with open(os.path.join(log, item), "ab") as f:
        f.write(b".")
        return f.tell() - 1


def work(item: str, model: Any = "a", log: str = "") -> str:
    n = count_attempt(log, item)
    code = code_of(item, n, model)
    if code == "ok":
        return f"{item}:{model}:{n}"
    raise make(code, f"{item}#{n}@{model}")


async def awork(item: str, model: Any = "a", log: str = "") -> str:
    await asyncio.sleep(0)
    return work(item, model, log)


def retry_predicate(exc: BaseException) -> bool:
    """The ``retry_on`` predicate: ``ValueError`` and 503 are retried, nothing else."""
    return isinstance(exc, ValueError) or getattr(exc, "status_code", None) == 503


RETRY_ON: dict[str, Any] = {
    "default": (Exception,),
    "types": (ValueError, HTTPError),
    "predicate": retry_predicate,
}


def exc_key(exc: BaseException) -> tuple[Any, ...]:
    return (type(exc).__qualname__, exc.args)


# ----- the model: what the documented rules make of one call -----------------------------
@dataclass
class Expected:
    outcome: tuple[Any, ...]  #: ("value", v) | ("raise", type, args) | ("all_failed", records)
    stats: dict[str, Any]  #: the ``stats()`` fields the model knows
    events: tuple[tuple[Any, ...], ...]  #: ``on_retry`` / ``on_fallback`` calls, in order
    paused: frozenset[str | None]  #: pause keys set (the clock stands still: none ends)


def model(script: str, retries: int, fallback: str, retry_on: str) -> Expected:
    """One call of ``script`` (``fallback``: "none", "single" (``arg_fallback`` set, one value
    given: no fallback in play) or "list"), with waits zero and the clock standing still."""
    values = list(VALUES) if fallback == "list" else None
    keys = [repr(v) for v in values] if values is not None else [None]
    s: Counter[str] = Counter()
    successes: Counter[str | None] = Counter()
    records: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    dead: set[int] = set()
    paused: set[str | None] = set()
    round_, index, n = 1, 0, 0

    def done(outcome: tuple[Any, ...]) -> Expected:
        stats = {"calls": 1, "cache_hits": 0, "attempts": 0, "failures": 0, "retries": 0}
        stats |= s | {"successes": dict(successes), "pauses": len(paused), "cooldowns": 0}
        return Expected(outcome, stats | {"wait": 0.0}, tuple(events), frozenset(paused))

    while True:
        # a paused value is skipped while another value of the round can start now
        alive = [i for i in range(index, len(keys)) if i not in dead]
        index = next((i for i in alive if keys[i] not in paused), alive[0])
        value = values[index] if values is not None else "a"
        code = code_of(script, n, value)
        s["attempts"] += 1
        if code == "ok":
            successes[keys[index]] += 1
            return done(("value", f"{script}:{value}:{n}"))
        exc = make(code, f"{script}#{n}@{value}")
        n += 1
        if not isinstance(exc, Exception):
            return done(("raise", *exc_key(exc)))  # no outcome: not a failure either
        s["failures"] += 1
        if isinstance(exc, HTTPError) and hasattr(exc, "retry_after"):
            paused.add(keys[index])  # every caller holds back this value, retried or not
        predicate = retry_on == "predicate"
        if not isinstance(exc, Exception if predicate else RETRY_ON[retry_on]):
            return done(("raise", *exc_key(exc)))  # outside retry_on: at once, unchanged
        if predicate and not retry_predicate(exc):
            return done(("raise", *exc_key(exc)))  # the predicate decides alone
        status = exc.status_code if isinstance(exc, HTTPError) else None
        permanent = not predicate and status == 404 and code != "S"
        records.append((round_, value if values is not None else None, *exc_key(exc)))
        if permanent:
            dead.add(index)
        if values is not None:
            following = [i for i in range(index + 1, len(values)) if i not in dead]
            if following:
                events.append(("fallback", value, values[following[0]], round_, *exc_key(exc)))
                index = following[0]
                continue
        if values is None:
            if permanent or round_ > retries:
                return done(("raise", *exc_key(exc)))  # the last exception itself
        elif round_ > retries or len(dead) == len(values):
            return done(("all_failed", tuple(records)))
        events.append(("retry", round_, *exc_key(exc)))
        round_ += 1
        s["retries"] += 1
        index = 0


# ----- what a path did, as comparable data ----------------------------------------------
MAP_NOTE = "operomap item "  #: the map's own note naming the item's index


def notes(exc: BaseException) -> tuple[str, ...]:
    return tuple(n for n in getattr(exc, "__notes__", ()) if not n.startswith(MAP_NOTE))


def observed(result: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``(outcome, text)`` of a call's result or exception: the outcome as the model states
    it, and the text a user reads (message and notes, of each attempt too)."""
    from opero import AllFailedError

    if not isinstance(result, BaseException):
        return ("value", result), ()
    text: tuple[Any, ...] = (str(result), notes(result))
    if isinstance(result, AllFailedError):
        records = tuple((a.round, a.value, *exc_key(a.exception)) for a in result.attempts)
        same = [a.exception for a in result.attempts] == list(result.exceptions)
        text += (same, tuple((str(e), notes(e)) for e in result.exceptions))
        return ("all_failed", records), text
    return ("raise", *exc_key(result)), text


def hook_events(into: list[tuple[Any, ...]]) -> dict[str, Any]:
    """``on_retry`` and ``on_fallback`` hooks appending what they are told to ``into``."""

    def on_retry(d: Any) -> None:
        into.append(("retry", d.round, *exc_key(d.error)))

    def on_fallback(d: Any) -> None:
        into.append(("fallback", d.failed_value, d.next_value, d.round, *exc_key(d.error)))

    return {"on_retry": on_retry, "on_fallback": on_fallback}
