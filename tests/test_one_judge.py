"""One judge: a scripted sequence of failures ends the same way on every path.

Every case runs each script (:data:`tests.judge_scripts.SCRIPTS`) through one path of the
library and compares what the user sees with the reference model
(:func:`tests.judge_scripts.model`): the outcome (value, or exception type and args, or the
``AllFailedError``'s ``.attempts`` records) and every ``stats()`` field the model knows. So are
the ``on_retry`` and ``on_fallback`` hook calls. The text a user reads (messages, notes) and
the stats fields the model does not know are compared with the judge's own path: a sync
``@opero`` call with no cache and a rate limit (so no fast path is taken; waits are zero in
testing mode).

Tables, each one line per entry: :data:`SCRIPTS` (what the attempts do), :data:`RETRIES`,
:data:`FALLBACKS`, :data:`RETRY_ONS` (options the judge decides with: the model knows them),
:data:`ROUTES` and :data:`CACHES` (options that choose an internal path and must change
nothing), :data:`CALLS` and :data:`MAPS` (how the function is called).

A map's ``stats()`` after mapping items equals the calls' stats summed over the items, field
by field. Two fields could differ between calls and a map by definition and are kept equal
here by construction: ``wait`` (items of a map compete for rate-limit and concurrency slots,
sequential calls do not; testing mode makes every wait zero and the injected clock makes
measured waits zero) and ``cooldowns`` (a breaker counts consecutive failures across calls,
so how items interleave decides when it opens; ``cooldown_after`` is never reached here).
Each item is its own key, so no item is a cache hit or follows another item's computation.
``pauses`` is shared by design: a pause is set once for every caller, so items of one map that
get the same server delay share one pause (the model counts the keys paused). Some scripts
cannot share a map with others: a ``BaseException`` ends the whole map, and with fallback
values a pause set by one item reorders the values of the others; they run in a map of their
own.

A case is one path and one configuration; its scripts run inside it. Where paths disagree
today, :data:`KNOWN` names the scripts and why: such a case is an expected failure that holds
only while exactly those scripts disagree (another script disagreeing fails it, and so does
a listed one that agrees again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from opero import opero, operomap
from opero.core.stats import Stats
from opero.testing import set_testing
from tests import judge_scripts as js
from tests.judge_scripts import SCRIPTS

#: the options the judge decides with: each field of :class:`~tests.judge_scripts.Config`
JUDGED: dict[str, tuple[Any, ...]] = {
    "retries": (0, 1, 2),
    "fallback": ("none", "single", "list"),
    "retry_on": tuple(js.RETRY_ON),
}
ROUTES: dict[str, dict[str, Any]] = {
    "plain": {},
    "rate_limit": {"rate_limit": 1000},
    "concurrency": {"concurrency": 4},
    "cooldown": {"cooldown": 60, "cooldown_after": 1000},
    "timeout": {"timeout": 30},
}
CACHES: dict[str, dict[str, Any]] = {"off": {"cache": False}, "memory": {"cache": True}}
CALLS = ("sync", "async")
MAPS: dict[str, tuple[Callable[..., Any], str]] = {
    "thread": (js.work, "thread"),
    "async": (js.awork, "async"),
    "process": (js.work, "process"),
    "process_async": (js.awork, "process_async"),
}
#: how maps run the scripts: (MAPS key, items, routes, JUDGED values kept). Items "one": a
#: map per script; "all": one map of every script. Fewer combinations where many maps or
#: processes start: the routes a map treats alike (rate_limit, concurrency, cooldown: one
#: attempt per free worker, judged by the pipeline) all run in async maps and calls.
FEW = ("plain", "rate_limit", "timeout")
Way = tuple[str, str, tuple[str, ...], dict[str, tuple[Any, ...]]]
MAP_WAYS: list[Way] = [
    ("thread", "one", FEW, {"retries": (0, 2)}),
    ("thread", "all", FEW, {}),
    ("async", "one", FEW, {"retries": (0, 2)}),
    ("async", "all", tuple(ROUTES), {}),
    ("process", "all", FEW, {"retries": (0, 2)}),
    ("process_async", "all", ("plain",), {"retries": (2,)}),
]
MAP_STATS = "<the map's stats>"  #: a map of several items: its stats, summed over them


@dataclass(frozen=True)
class Case:
    api: str  # "call" or "map"
    flavor: str  # CALLS or MAPS
    items: str  # "one" or "all" (MAP_WAYS); "" for calls
    cache: str
    route: str
    config: js.Config

    def __str__(self) -> str:
        fields = (self.api, self.flavor, self.items, self.cache, self.route)
        return "-".join([f for f in fields if f] + [str(v) for v in vars(self.config).values()])

    def options(self) -> dict[str, Any]:
        return self.config.options() | CACHES[self.cache] | ROUTES[self.route]

    def scripts(self) -> list[str]:
        return [s for s in SCRIPTS if self.config.relevant(s)]

    def names(self) -> set[str]:
        """What :func:`check` compares: each script, and a map of several items' stats."""
        several = self.api == "map" and any(len(items) > 1 for items in self.maps())
        return set(self.scripts()) | ({MAP_STATS} if several else set())

    def maps(self) -> list[list[str]]:
        """The items of each map this case runs."""
        if self.items == "one":
            return [[s] for s in self.scripts()]
        alone = {"X"} | ({"R"} if self.config.fallback == "list" else set())
        shared = [s for s in self.scripts() if not js.codes(s) & alone]
        return [shared, *([s] for s in self.scripts() if s not in shared)]


# ----- what disagrees today ---------------------------------------------------------------
@dataclass(frozen=True)
class Known:
    where: Callable[[Case], bool]
    scripts: frozenset[str]
    reason: str
    #: only stats differ: in a map of several items, the map's stats show it, not the items
    stats_only: bool = False

    def names(self, case: Case) -> set[str]:
        if self.stats_only and case.items == "all":
            return {MAP_STATS} & case.names()
        return self.scripts & case.names()


def direct_call(c: Case) -> bool:  # @opero makes the first attempt before the pipeline
    return c.api == "call" and c.route == "plain" and c.config.fallback == "none"


def first_fast(c: Case) -> bool:  # a thread/process map sends first attempts by itself
    return c.flavor != "async" and c.route in ("plain", "timeout") and c.config.fallback == "none"


def worker_direct(c: Case) -> bool:  # an async map's worker awaits first attempts itself
    return (
        c.flavor == "async"
        and c.cache == "off"
        and c.route == "plain"
        and c.config.fallback == "none"
    )


FOREIGN = frozenset({"foreign", "typeerror_then_ok"})  #: first attempt outside retry_on types
KNOWN: list[Known] = [
    Known(
        lambda c: direct_call(c) and c.cache == "off" and c.config.retry_on == "types",
        FOREIGN,
        "direct call path: a first attempt raising outside retry_on is counted as a success "
        "(stats successes={None: 1}, failures=0; the judge: successes={}, failures=1)",
    ),
    Known(
        lambda c: direct_call(c) and c.cache == "off",
        frozenset({"halt"}),
        "direct call path: a first attempt raising a BaseException is counted as a success "
        "(stats successes={None: 1}; the judge: successes={})",
    ),
    Known(
        lambda c: direct_call(c) and c.cache == "memory" and c.config.retry_on == "types",
        FOREIGN,
        "memory-cached direct call path: a first attempt raising outside retry_on is not "
        "counted as a failure (stats failures=0; the judge: failures=1)",
    ),
    Known(
        lambda c: (
            c.api == "map"
            and first_fast(c)
            and c.config.retry_on == "types"
            and c.config.retries > 0
        ),
        FOREIGN | {MAP_STATS},
        "map first-attempt fast path: a first attempt raising outside retry_on is retried "
        "(foreign: KeyError of attempt #1 or #2 raised, attempts/failures=retries+1, "
        "on_retry called; typeerror_then_ok: returns 'typeerror_then_ok:a:1' instead of "
        "raising TypeError; the judge: raised at once after 1 attempt, no retry)",
    ),
    Known(  # in a map of several items, their stats show in the map's only
        lambda c: c.api == "map" and worker_direct(c) and c.config.retry_on == "types",
        FOREIGN,
        "async map worker coroutine: a first attempt raising outside retry_on is counted as "
        "a success (stats successes={None: 1}, failures=0; the judge: failures=1)",
        stats_only=True,
    ),
    Known(
        lambda c: c.api == "map" and (first_fast(c) or worker_direct(c)),
        frozenset({"halt"}),
        "map first-attempt fast path: a first attempt raising a BaseException (it stops the "
        "map) is counted as a success (stats successes={None: 1}; the judge: successes={})",
    ),
]


class KnownDisagreement(AssertionError):
    """Exactly the scripts :data:`KNOWN` lists for a case disagree."""


def known(case: Case) -> tuple[set[str], str]:
    """The names (scripts, :data:`MAP_STATS`) that disagree today in ``case``, and why."""
    found = [k for k in KNOWN if k.where(case) and k.names(case)]
    return {s for k in found for s in k.names(case)}, " / ".join(k.reason for k in found)


def param(case: Case) -> Any:
    scripts, reason = known(case)
    if not scripts:
        return pytest.param(case, id=str(case))
    mark = pytest.mark.xfail(strict=True, raises=KnownDisagreement, reason=reason)
    return pytest.param(case, id=str(case), marks=mark)


def cases(api: str) -> list[Any]:
    ways = [(f, "", tuple(ROUTES), {}) for f in CALLS] if api == "call" else MAP_WAYS
    return [
        param(Case(api, flavor, items, cache, route, js.Config(**dict(zip(JUDGED, judged)))))
        for flavor, items, routes, kept in ways
        for cache in CACHES
        for route in routes
        for judged in itertools.product(*(kept.get(k, v) for k, v in JUDGED.items()))
    ]


# ----- running a path ---------------------------------------------------------------------
def call(case: Case, script: str) -> js.Seen:
    fn = js.work if case.flavor == "sync" else js.awork
    events: list[Any] = []
    decorated: Any = opero(**case.options(), **js.hook_events(events))(fn)
    kwargs = case.config.kwargs(js.fresh_log())
    try:
        if case.flavor == "sync":
            result = decorated(script, **kwargs)
        else:
            result = asyncio.run(decorated(script, **kwargs))
    except (Exception, js.Halt) as exc:
        result = exc
    return js.seen(result, fn, events, decorated.stats())


def mapped(case: Case, log: str, items: list[str]) -> dict[str, js.Seen]:
    fn, mode = MAPS[case.flavor]
    events: list[Any] = []
    options = case.options() | {"mode": mode, "workers": 2, "progress": False}
    decorated: Any = operomap(**options, **js.hook_events(events), return_exceptions=True)(fn)
    try:
        results = decorated(items, **case.config.kwargs(log))
        if asyncio.iscoroutine(results):
            results = asyncio.run(results)
    except js.Halt as exc:  # it ends the map: only a map of one item runs a Halt
        results = [exc]
    if len(items) == 1:
        return {items[0]: js.seen(results[0], fn, events, decorated.stats())}
    got = {s: js.seen(r, fn, [], Stats()) for s, r in zip(items, results, strict=True)}
    got[MAP_STATS] = js.Seen((), (), tuple(sorted(events)), js.stats_of(decorated.stats()))
    return got


_wanted: dict[tuple[Any, ...], tuple[js.Seen, frozenset[Any]]] = {}


def wanted(case: Case, script: str) -> tuple[js.Seen, frozenset[Any]]:
    """The model's outcome, hook calls and stats (and the keys it paused); the text, and the
    stats fields the model does not know, from the judge's own path (sync, no cache, a rate
    limit: no shortcut taken)."""
    key = (case.config, script)
    if key not in _wanted:
        e, paused = js.model(script, case.config)
        judge = call(Case("call", "sync", "", "off", "rate_limit", case.config), script)
        _wanted[key] = dataclasses.replace(e, text=judge.text, stats=judge.stats | e.stats), paused
    return _wanted[key]


def map_wanted(case: Case, items: list[str]) -> dict[str, js.Seen]:
    if len(items) == 1:
        return {items[0]: wanted(case, items[0])[0]}
    wants = [wanted(case, s) for s in items]
    want = {
        s: dataclasses.replace(w, events=(), stats=js.stats_of(Stats()))
        for s, (w, _) in zip(items, wants, strict=True)
    }
    want[MAP_STATS] = js.summed([w for w, _ in wants], frozenset().union(*(p for _, p in wants)))
    return want


def check(case: Case, got: dict[str, js.Seen], want: dict[str, js.Seen]) -> None:
    """Every script as wanted, except exactly the ones :data:`KNOWN` lists for ``case``."""
    wrong = {s: js.differences(got[s], want[s]) for s in want if got[s] != want[s]}
    listed, reason = known(case)
    unexpected = {s: d for s, d in wrong.items() if s not in listed}
    agreeing = sorted(listed - wrong.keys())
    assert not unexpected and not agreeing, {"disagree": unexpected, "agree now": agreeing}
    if listed:
        raise KnownDisagreement(f"{reason}: {wrong}")


@pytest.fixture(autouse=True)
def _no_waits(clock: Any) -> Any:
    """Testing mode (no backoff or rate-limit wait) and an injected clock: waits measure 0
    and a server's pause never ends while a test runs."""
    with set_testing(True):
        yield


# ----- the tests --------------------------------------------------------------------------
@pytest.mark.parametrize("case", cases("call"))
def test_a_call_ends_as_the_judge_says(case: Case) -> None:
    scripts = case.scripts()
    check(case, {s: call(case, s) for s in scripts}, {s: wanted(case, s)[0] for s in scripts})


@pytest.mark.parametrize("case", cases("map"))
def test_a_map_item_ends_as_the_call_does(case: Case, tmp_path: Any) -> None:
    got: dict[str, js.Seen] = {}
    want: dict[str, js.Seen] = {}
    for n, items in enumerate(case.maps()):
        log = js.fresh_log()
        if case.flavor.startswith("process"):  # workers count attempts in files
            (tmp_path / str(n)).mkdir()
            log = str(tmp_path / str(n))
        got |= mapped(case, log, items)
        want |= map_wanted(case, items)
    check(case, got, want)
