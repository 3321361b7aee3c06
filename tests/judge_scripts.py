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
:data:`SCRIPTS`; a new outcome code, one line in :data:`MAKERS` (and, if the rules treat it
in a new way, a line in :func:`model`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opero.core.stats import Stats

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
    """An HTTP-like failure: the library reads ``status_code``, ``retry_after``, ``headers``."""

    def __init__(self, status_code: int, where: str, **attributes: Any) -> None:
        super().__init__(status_code, where)
        self.status_code = status_code
        self.__dict__.update(attributes)


class Halt(BaseException):
    """Not an ``Exception``: like ``SystemExit``, it ends the call (and a map) at once."""


#: how each outcome code fails (any other code but "ok" is an HTTP status)
MAKERS: dict[str, Callable[[str], BaseException]] = {
    "E": ValueError,
    "T": TypeError,
    "K": KeyError,
    "X": Halt,
    "R": lambda where: HTTPError(429, where, retry_after=1.0),
    "S": lambda where: HTTPError(404, where, headers={"x-should-retry": "true"}),
    "U": lambda where: HTTPError(503, where, lock=threading.Lock()),
}


def make(code: str, where: str) -> BaseException:
    return MAKERS[code](where) if code in MAKERS else HTTPError(int(code), where)


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


@dataclass(frozen=True)
class Config:
    """The options the judge decides with (each field's default leaves its option off)."""

    retries: int = 0
    #: "none"; "single": ``arg_fallback`` set, one value given (no fallback in play); "list"
    fallback: str = "none"
    retry_on: str = "default"  #: a key of :data:`RETRY_ON`

    def options(self) -> dict[str, Any]:
        options = {"retries": self.retries, "retry_on": RETRY_ON[self.retry_on]}
        return options | ({"arg_fallback": "model"} if self.fallback != "none" else {})

    def kwargs(self, log: str) -> dict[str, Any]:
        return {"model": list(VALUES) if self.fallback == "list" else "a", "log": log}

    def relevant(self, script: str) -> bool:
        """False where this ``retry_on`` decides the script like the default does."""
        if self.retry_on == "types":
            return bool(codes(script) & {"K", "T"})
        if self.retry_on == "predicate":
            return bool(codes(script) & {"K", "T", "404", "R", "S"})
        return True


def exc_key(exc: BaseException) -> tuple[Any, ...]:
    return (type(exc).__qualname__, exc.args)


@dataclass
class Seen:
    """What a user sees of a call (or expects to)."""

    outcome: tuple[Any, ...]  #: ("value", v) | ("raise", type, args) | ("all_failed", records)
    text: tuple[Any, ...]  #: messages and notes
    events: tuple[Any, ...]  #: ``on_retry`` / ``on_fallback`` calls, in order
    stats: dict[str, Any]  #: ``stats()`` fields (the model's: those it knows)


# ----- the model: what the documented rules make of one call -----------------------------
def model(script: str, config: Config) -> tuple[Seen, frozenset[str | None]]:
    """One call of ``script`` under ``config``, with waits zero and the clock standing still
    (no text: the judge's own path tells it), and the pause keys it set (none ends)."""
    retries, retry_on = config.retries, config.retry_on
    values = list(VALUES) if config.fallback == "list" else None
    keys = [repr(v) for v in values] if values is not None else [None]
    s: Counter[str] = Counter()
    successes: Counter[str | None] = Counter()
    records: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    dead: set[int] = set()
    paused: set[str | None] = set()
    round_, index, n = 1, 0, 0

    def done(outcome: tuple[Any, ...]) -> tuple[Seen, frozenset[str | None]]:
        stats = {"calls": 1, "cache_hits": 0, "attempts": 0, "failures": 0, "retries": 0}
        stats |= s | {"successes": dict(successes), "pauses": len(paused), "cooldowns": 0}
        return Seen(outcome, (), tuple(events), stats | {"wait": 0.0}), frozenset(paused)

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
        # the status rule: a 404 is permanent for its value, unless the server says retry
        should_retry = getattr(exc, "headers", {}).get("x-should-retry") == "true"
        permanent = not predicate and getattr(exc, "status_code", 0) == 404 and not should_retry
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


def seen(result: Any, fn: Callable[..., Any], events: list[Any], stats: Stats) -> Seen:
    """What a user sees of a call's result or exception (the function's name left out of
    the text: a sync and an async function differ in it)."""
    from opero import AllFailedError

    if not isinstance(result, BaseException):
        return Seen(("value", result), (), tuple(events), stats_of(stats))
    text: tuple[Any, ...] = (str(result).replace(f"{fn.__qualname__}:", "<fn>:"), notes(result))
    outcome: tuple[Any, ...] = ("raise", *exc_key(result))
    if isinstance(result, AllFailedError):
        outcome = (
            "all_failed",
            tuple((a.round, a.value, *exc_key(a.exception)) for a in result.attempts),
        )
        same = [a.exception for a in result.attempts] == list(result.exceptions)
        text += (same, tuple((str(e), notes(e)) for e in result.exceptions))
    return Seen(outcome, text, tuple(events), stats_of(stats))


def stats_of(stats: Stats) -> dict[str, Any]:
    found = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    return found | {"successes": dict(stats.successes)}


def summed(wants: list[Seen], paused: frozenset[Any]) -> Seen:
    """What a map of several items shows: the items' stats and hook calls together."""
    total = stats_of(Stats())
    for want in wants:
        for name, value in want.stats.items():
            if name == "successes":
                for key, count in value.items():
                    total[name][key] = total[name].get(key, 0) + count
            else:
                total[name] += value
    total["pauses"] = len(paused)  # one pause per key, shared by every item
    return Seen((), (), tuple(sorted(e for w in wants for e in w.events)), total)


def differences(got: Seen, want: Seen) -> dict[str, Any]:
    """Each field (stats fields one by one) where ``got`` is not ``want``."""
    g, w = (
        {"outcome": s.outcome, "text": s.text, "events": s.events, **s.stats} for s in (got, want)
    )
    return {
        k: {"got": g.get(k), "want": w.get(k)} for k in g.keys() | w.keys() if g.get(k) != w.get(k)
    }


def hook_events(into: list[tuple[Any, ...]]) -> dict[str, Any]:
    """``on_retry`` and ``on_fallback`` hooks appending what they are told to ``into``."""

    def on_retry(d: Any) -> None:
        into.append(("retry", d.round, *exc_key(d.error)))

    def on_fallback(d: Any) -> None:
        into.append(("fallback", d.failed_value, d.next_value, d.round, *exc_key(d.error)))

    return {"on_retry": on_retry, "on_fallback": on_fallback}
