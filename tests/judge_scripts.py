"""Scripted functions for ``tests/test_one_judge.py`` (the model is ``tests/judge_model.py``).

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
- ``B``: return ``"bad:<item>:<value>:<n>"``, a result ``retry_on_result`` rejects when the
  config asks for it (:func:`rejects`)
- ``D``: ``ValueError`` after taking 10 s of the injected clock (past a ``deadline`` of 5 s)
- ``A``/``W``: return a coroutine / an :class:`Awaitable` object from a sync function (which
  fails the call with ``TypeError``); async functions never get these scripts

The item is the script's name. Attempts are counted per item under ``log``, an argument:
a directory (a file per item: worker processes count there too) or ``"mem:<name>"`` (in this
process's memory, cheaper, for threads and tasks). A new script is one line in
:data:`SCRIPTS`; a new outcome code, one line in :data:`MAKERS` (and, if the rules treat it
in a new way, a line in ``judge_model.model``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opero import RetryBudget
from opero.core.clock import CLOCK

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
    "returns_coroutine": ("A",),
    "returns_awaitable": ("W",),
    "returns_awaitable_later": ("E", "W"),
    "bad_then_ok": ("B", "ok"),
    "bad_always": ("B",),
    "a_bad_b_ok": ("B|ok",),
    "bad_then_fails": ("B", "E"),
    "slow": ("D",),
    "fails_then_slow": ("E", "D", "ok"),
    "a_slow_b_ok": ("D|ok",),
}
SYNC_ONLY = {"A", "W"}  #: codes only a sync function plays (an async one may return these)
LOCAL_ONLY = {"D"}  #: codes that move this process's clock: never played in worker processes


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
    "D": ValueError,
    "T": TypeError,
    "K": KeyError,
    "X": Halt,
    "R": lambda where: HTTPError(429, where, retry_after=1.0),
    "S": lambda where: HTTPError(404, where, headers={"x-should-retry": "true"}),
    "U": lambda where: HTTPError(503, where, lock=threading.Lock()),
}


class Awaitable:
    """An awaitable that is not a coroutine."""

    def __await__(self) -> Any:
        return iter(())


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
    if code == "B":
        return f"bad:{item}:{model}:{n}"
    if code == "D":
        CLOCK.sleep(10)  # the injected clock: the attempt took 10 s
    if code in SYNC_ONLY:
        return asyncio.sleep(0) if code == "A" else Awaitable()
    raise make(code, f"{item}#{n}@{model}")


async def awork(item: str, model: Any = "a", log: str = "") -> str:
    await asyncio.sleep(0)
    return work(item, model, log)


def retry_predicate(exc: BaseException) -> bool:
    """The ``retry_on`` predicate: ``ValueError`` and 503 are retried, nothing else."""
    return isinstance(exc, ValueError) or getattr(exc, "status_code", None) == 503


def rejects(result: Any) -> bool:
    """The ``retry_on_result`` predicate: a ``B`` step's result is rejected."""
    return isinstance(result, str) and result.startswith("bad:")


#: ``retry_budget`` that refuses every retry (no reserve, no share of calls)
SPENT = RetryBudget(ratio=0, minimum=0, window=10)

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
    result: str = "none"  #: "reject": ``retry_on_result`` rejects ``B`` results
    budget: str = "none"  #: "spent": a ``retry_budget`` that refuses every retry
    deadline: str = "none"  #: "5s": ``deadline=5`` (a ``D`` attempt outlasts it)
    hooks: str = "none"  #: "watched": ``on_attempt`` and ``on_give_up`` hooks too

    def options(self) -> dict[str, Any]:
        options = {"retries": self.retries, "retry_on": RETRY_ON[self.retry_on]}
        if self.result == "reject":
            options["retry_on_result"] = rejects
        if self.budget == "spent":
            options["retry_budget"] = SPENT
        if self.deadline == "5s":
            options["deadline"] = 5
        if self.hooks == "watched":
            options["watched"] = True  # (the model's runner turns it into hooks)
        return options | ({"arg_fallback": "model"} if self.fallback != "none" else {})

    def kwargs(self, log: str) -> dict[str, Any]:
        return {"model": list(VALUES) if self.fallback == "list" else "a", "log": log}

    def relevant(self, script: str) -> bool:
        """False where this config decides the script like the defaults do."""
        others = (self.result, self.budget, self.deadline, self.retry_on)
        if self.hooks == "watched" and others != ("none", "none", "none", "default"):
            return False  # hooks are told the same under every other option
        if self.result == "reject" and "B" not in codes(script):
            return False
        if self.deadline == "5s" and "D" not in codes(script):
            return False
        if self.budget == "spent" and (self.retries == 0 or codes(script) <= {"ok", "B"}):
            return self.result == "reject" and self.retries > 0 and "B" in codes(script)
        if self.retry_on == "types":
            return bool(codes(script) & {"K", "T"})
        if self.retry_on == "predicate":
            return bool(codes(script) & {"K", "T", "404", "R", "S"})
        return True


def exc_key(exc: BaseException) -> tuple[Any, ...]:
    return (type(exc).__qualname__, exc.args)
