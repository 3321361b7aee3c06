"""The reference model of ``tests/test_one_judge.py``, and what a user sees of a call.

:func:`model` states what the documented rules make of one call of a script (see
``tests/judge_scripts.py``): its outcome, ``on_retry``/``on_fallback`` calls and ``stats()``.
:func:`call` and :func:`mapped` run a script through ``@opero`` or ``@operomap`` and return
the same shape (:class:`Seen`), with the text a user reads (messages, notes) besides.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opero import opero, operomap
from opero.core.stats import Stats
from tests.judge_scripts import (
    RETRY_ON,
    VALUES,
    Config,
    Halt,
    code_of,
    exc_key,
    fresh_log,
    make,
    retry_predicate,
    work,
)

MAP_STATS = "<the map's stats>"  #: a map of several items: its stats, summed over them


class _Any:
    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()  #: the model's "whatever the library says" (its text is compared instead)


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
    errors: Counter[str] = Counter()  #: failed attempts by class name (and HTTP status)
    records: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    dead: set[int] = set()
    paused: set[str | None] = set()
    round_, index, n = 1, 0, 0

    def done(outcome: tuple[Any, ...]) -> tuple[Seen, frozenset[str | None]]:
        if config.hooks == "watched" and outcome[0] != "value" and outcome[1:2] != ("Halt",):
            given_up = "AllFailedError" if outcome[0] == "all_failed" else outcome[1]
            events.append(("give_up", given_up))
        stats = {"calls": 1, "cache_hits": 0, "attempts": 0, "failures": 0, "retries": 0}
        stats |= {"rejected": 0, "budget_refusals": 0, "deadlines": 0}
        stats |= s | {"successes": dict(successes), "pauses": len(paused), "cooldowns": 0}
        stats["errors"] = dict(errors)
        return Seen(outcome, (), tuple(events), stats | {"wait": 0.0}), frozenset(paused)

    while True:
        # a paused value is skipped while another value of the round can start now
        alive = [i for i in range(index, len(keys)) if i not in dead]
        index = next((i for i in alive if keys[i] not in paused), alive[0])
        value = values[index] if values is not None else "a"
        code = code_of(script, n, value)
        s["attempts"] += 1
        if config.hooks == "watched":
            events.append(("attempt", round_, value if values is not None else None))
        if code == "ok" or (code == "B" and config.result != "reject"):
            successes[keys[index]] += 1
            return done(("value", f"{'bad:' if code == 'B' else ''}{script}:{value}:{n}"))
        if code == "A":  # a coroutine from a sync function: misdeclared, the call fails at once
            return done(("raise", "TypeError", ANY))  # (an attempt, neither failed nor a success)
        if code == "W":  # any other awaitable is a value like any other
            successes[keys[index]] += 1
            return done(("value", "<Awaitable>"))
        n += 1
        if code == "B":  # a rejected result: a failure that is always retried
            s["failures"] += 1
            errors["RejectedResultError"] += 1
            s["rejected"] += 1
            key: tuple[Any, ...] = ("RejectedResultError", ANY)
            permanent = False
        else:
            exc = make(code, f"{script}#{n - 1}@{value}")
            key = exc_key(exc)
            if not isinstance(exc, Exception):
                return done(("raise", *key))  # no outcome: not a failure either
            s["failures"] += 1
            status = getattr(exc, "status_code", None)
            errors[type(exc).__name__ + (f" {status}" if status else "")] += 1
            if code == "D" and config.deadline == "5s":  # the budget ran out during it
                s["deadlines"] += 1
                return done(("raise", "DeadlineExceededError", ANY))
            if hasattr(exc, "retry_after"):
                paused.add(keys[index])  # every caller holds back this value, retried or not
            predicate = retry_on == "predicate"
            if not isinstance(exc, Exception if predicate else RETRY_ON[retry_on]):
                return done(("raise", *key))  # outside retry_on: at once, unchanged
            if predicate and not retry_predicate(exc):
                return done(("raise", *key))  # the predicate decides alone
            # the status rule: a 404 is permanent for its value, unless the server says retry
            should_retry = getattr(exc, "headers", {}).get("x-should-retry") == "true"
            permanent = not predicate and getattr(exc, "status_code", 0) == 404 and not should_retry
        records.append((round_, value if values is not None else None, *key))
        if permanent:
            dead.add(index)
        if values is not None:
            following = [i for i in range(index + 1, len(values)) if i not in dead]
            if following:
                events.append(("fallback", value, values[following[0]], round_, *key))
                index = following[0]
                continue
        if values is None:
            if permanent or round_ > retries:
                return done(("raise", *key))  # the last exception itself
        elif round_ > retries or len(dead) == len(values):
            return done(("all_failed", tuple(records)))
        if config.budget == "spent":  # the retry is refused: the call ends as if none were left
            s["budget_refusals"] += 1
            return done(("raise", *key) if values is None else ("all_failed", tuple(records)))
        events.append(("retry", round_, *key))
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
        if inspect.iscoroutine(result):
            result.close()  # a value no one will await
        value = result if isinstance(result, str) else f"<{type(result).__qualname__}>"
        return Seen(("value", value), (), tuple(events), stats_of(stats))
    name = f"{fn.__qualname__}:"

    def plain(exc: BaseException) -> tuple[str, tuple[str, ...]]:
        return str(exc).replace(name, "<fn>:"), tuple(n.replace(name, "<fn>:") for n in notes(exc))

    text: tuple[Any, ...] = plain(result)
    outcome: tuple[Any, ...] = ("raise", *exc_key(result))
    if isinstance(result, AllFailedError):
        outcome = (
            "all_failed",
            tuple((a.round, a.value, *exc_key(a.exception)) for a in result.attempts),
        )
        same = [a.exception for a in result.attempts] == list(result.exceptions)
        text += (same, tuple(plain(e) for e in result.exceptions))
    return Seen(outcome, text, tuple(events), stats_of(stats))


def stats_of(stats: Stats) -> dict[str, Any]:
    found = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    return found | {"successes": dict(stats.successes), "errors": dict(stats.errors)}


def summed(wants: list[Seen], paused: frozenset[Any]) -> Seen:
    """What a map of several items shows: the items' stats and hook calls together."""
    total = stats_of(Stats())
    for want in wants:
        for name, value in want.stats.items():
            if name in ("successes", "errors"):
                for key, count in value.items():
                    total[name][key] = total[name].get(key, 0) + count
            elif value is not None:  # learned_rate: None without an Adaptive limit
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


def hook_events(into: list[tuple[Any, ...]], options: dict[str, Any]) -> dict[str, Any]:
    """``on_retry`` and ``on_fallback`` hooks appending what they are told to ``into``, and
    ``on_attempt``/``on_give_up`` too when ``options`` say ``watched`` (taken out of them)."""

    def on_retry(d: Any) -> None:
        into.append(("retry", d.round, *exc_key(d.error)))

    def on_fallback(d: Any) -> None:
        into.append(("fallback", d.failed_value, d.next_value, d.round, *exc_key(d.error)))

    hooks = {"on_retry": on_retry, "on_fallback": on_fallback}
    if options.pop("watched", False):

        def on_attempt(d: Any) -> None:
            into.append(("attempt", d.round, d.value))

        def on_give_up(d: Any) -> None:
            into.append(("give_up", type(d.error).__qualname__))

        hooks |= {"on_attempt": on_attempt, "on_give_up": on_give_up}
    return hooks


# ----- running a path (options as the decorators take them) --------------------------
def call(
    fn: Callable[..., Any], options: dict[str, Any], script: str, kwargs: dict[str, Any]
) -> Seen:
    """One ``@opero`` call of ``script``, as its user sees it."""
    events: list[Any] = []
    options = dict(options)
    decorated: Any = opero(**hook_events(events, options), **options)(fn)
    try:
        result = decorated(script, **kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
    except (Exception, Halt) as exc:
        result = exc
    return seen(result, fn, events, decorated.stats())


def mapped(
    fn: Callable[..., Any], options: dict[str, Any], items: list[str], kwargs: dict[str, Any]
) -> dict[str, Seen]:
    """One ``@operomap`` call over ``items``: each item as its user sees it, and with several
    items, the map's stats and hook calls under :data:`MAP_STATS`."""
    events: list[Any] = []
    options = dict(options)
    hooks = hook_events(events, options)
    decorated: Any = operomap(**options, **hooks, return_exceptions=True)(fn)
    try:
        results = decorated(items, **kwargs)
        if asyncio.iscoroutine(results):
            results = asyncio.run(results)
    except Halt as exc:  # it ends the map: only a map of one item runs a Halt
        results = [exc]
    if len(items) == 1:
        return {items[0]: seen(results[0], fn, events, decorated.stats())}
    got = {s: seen(r, fn, [], Stats()) for s, r in zip(items, results, strict=True)}
    got[MAP_STATS] = Seen((), (), tuple(sorted(events)), stats_of(decorated.stats()))
    return got


# ----- what a path should show ------------------------------------------------------
#: the judge's own path: sync, no cache, a rate limit (no shortcut taken; no wait in testing)
JUDGE = {"cache": False, "rate_limit": 1000}
_wanted: dict[tuple[Config, str], tuple[Seen, frozenset[str | None]]] = {}


def wanted(config: Config, script: str) -> tuple[Seen, frozenset[str | None]]:
    """The model's outcome, hook calls and stats (and the keys it paused); the text, and the
    stats fields the model does not know, from the judge's own path."""
    if (config, script) not in _wanted:
        e, paused = model(script, config)
        options = config.options() | JUDGE
        judge = call(work, options, script, config.kwargs(fresh_log()))
        seen_ = dataclasses.replace(e, text=judge.text, stats=judge.stats | e.stats)
        _wanted[config, script] = seen_, paused
    return _wanted[config, script]


def map_wanted(config: Config, items: list[str]) -> dict[str, Seen]:
    """What a map of ``items`` should show (see :func:`mapped`)."""
    if len(items) == 1:
        return {items[0]: wanted(config, items[0])[0]}
    wants = [wanted(config, s) for s in items]
    want = {
        s: dataclasses.replace(w, events=(), stats=stats_of(Stats()))
        for s, (w, _) in zip(items, wants, strict=True)
    }
    paused = frozenset[str | None]().union(*(p for _, p in wants))
    want[MAP_STATS] = summed([w for w, _ in wants], paused)
    return want
