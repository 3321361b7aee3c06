"""One judge: a scripted sequence of failures ends the same way on every path.

Each case runs every script (``tests/judge_scripts.py``) through one path of the library and
compares what its user sees with the reference model (``tests/judge_model.py``): the outcome
(value; exception type and args; an ``AllFailedError``'s ``.attempts``), the ``on_retry`` and
``on_fallback`` calls and every ``stats()`` field the model knows. The text (messages, notes)
and stats fields the model does not know are compared with the judge's own path: a sync
``@opero`` call, no cache, a rate limit (no fast path; no wait in testing mode).

One line per entry: ``SCRIPTS`` (what attempts do), :data:`JUDGED` (options the judge decides
with: the model knows them), :data:`ROUTES` and :data:`CACHES` (options that choose an
internal path and must change nothing), :data:`CALLS` and :data:`MAP_WAYS` (how it is called).

A map's ``stats()`` equals its items' call stats summed, field by field. Fields that could
differ by definition are kept equal by construction: ``wait`` (a map's items compete for
rate-limit and concurrency slots; here testing mode and the injected clock make every wait
0) and ``cooldowns`` (breakers count consecutive failures across calls, so interleaving
decides when one opens; ``cooldown_after`` is never reached). ``pauses`` is shared by design:
items of one map paused with one key share one pause (the model counts the keys paused).
Items are distinct keys: none is a cache hit or follows another's computation. A script with
a ``BaseException`` ends its map, and with fallback values a pause reorders the other items'
values: such scripts run in a map of their own.

Where paths disagree today, :data:`KNOWN` names the scripts and why; such a case is an
expected failure that holds only while exactly those scripts disagree.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from opero import Service
from opero.testing import set_testing
from tests import judge_model as jm
from tests import judge_scripts as js
from tests.judge_scripts import SCRIPTS

#: paths that return an awaitable as a value warn that it is never cached
pytestmark = pytest.mark.filterwarnings("ignore:opero. work returned:UserWarning")

#: the options the judge decides with: each field of :class:`~tests.judge_scripts.Config`
JUDGED: dict[str, tuple[Any, ...]] = {
    "retries": (0, 1, 2),
    "fallback": ("none", "single", "list"),
    "retry_on": tuple(js.RETRY_ON),
    "result": ("none", "reject"),
    "budget": ("none", "spent"),
    "deadline": ("none", "5s"),
    "hooks": ("none", "watched"),
}
ROUTES: dict[str, dict[str, Any]] = {
    "plain": {},
    "rate_limit": {"rate_limit": 1000},
    "concurrency": {"concurrency": 4},
    "cooldown": {"cooldown": 60, "cooldown_after": 1000},
    "timeout": {"timeout": 30},
    "deadline": {"deadline": 1e6},  # never reached, even by slow (D) attempts
    "service": {},  # a Service of its own per decoration (see Case.options)
    #: a budget per fallback value, and the spread strategy (with arg_fallback only)
    "per_value": {"rate_limit": {"*": 1000}, "fallback_strategy": "spread"},
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
#: map per script (its stats compared item by item); "all": one map of every script. Fewer
#: combinations where many maps or processes start: the routes a map treats alike
#: (rate_limit, concurrency, cooldown: one attempt per free worker, judged by the pipeline)
#: all run in async maps and in calls; "single" fallback and retries 0/1 in thread maps.
FEW = ("plain", "rate_limit", "timeout")
Way = tuple[str, str, tuple[str, ...], dict[str, tuple[Any, ...]]]
#: rules decided in the caller alike for every transport: budgets and hooks run in thread and
#: async maps and in calls; process maps keep the result check and deadlines (their
#: outcomes cross the process boundary)
CALLER: dict[str, tuple[Any, ...]] = {"budget": ("none",), "hooks": ("none",)}
MAP_WAYS: list[Way] = [
    ("thread", "one", ("plain",), {"retries": (2,)}),
    ("thread", "all", FEW, {}),
    ("async", "one", FEW, {"retries": (2,)}),
    ("async", "all", tuple(ROUTES), {}),
    ("process", "all", FEW, {"retries": (2,), "fallback": ("none", "list")} | CALLER),
    ("process_async", "all", ("plain",), {"retries": (2,), "fallback": ("none", "list")} | CALLER),
]
MAP_STATS = jm.MAP_STATS


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
        route = ROUTES[self.route]
        if self.route == "service":  # shared state: a fresh one per decorated function
            route = {"rate_limit": Service(1000, concurrency=8, cooldown=60, cooldown_after=1000)}
        return CACHES[self.cache] | route | self.config.options()

    def call(self, script: str) -> jm.Seen:
        fn = js.awork if self.flavor == "async" else js.work
        return jm.call(fn, self.options(), script, self.config.kwargs(js.fresh_log()))

    def map(self, log: str, items: list[str]) -> dict[str, jm.Seen]:
        fn, mode = MAPS[self.flavor]
        options = self.options() | {"mode": mode, "workers": 2, "progress": False}
        return jm.mapped(fn, options, items, self.config.kwargs(log))

    def scripts(self) -> list[str]:
        sync = self.flavor not in ("async", "process_async")  # the function is async
        return [
            s
            for s in SCRIPTS
            if self.config.relevant(s)
            and (sync or not js.codes(s) & js.SYNC_ONLY)
            and not (self.flavor.startswith("process") and js.codes(s) & js.LOCAL_ONLY)
        ]

    def names(self) -> set[str]:
        """What :func:`check` compares: each script, and a map of several items' stats."""
        several = self.api == "map" and any(len(items) > 1 for items in self.maps())
        return set(self.scripts()) | ({MAP_STATS} if several else set())

    def maps(self) -> list[list[str]]:
        """The items of each map this case runs."""
        if self.items == "one":
            return [[s] for s in self.scripts()]
        alone = {"X", "D"} | ({"R"} if self.config.fallback == "list" else set())
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
        """The names this entry lists for ``case``: none unless one of its scripts runs."""
        if not self.scripts & set(case.scripts()):
            return set()
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
AWAITABLES = frozenset({"returns_coroutine", "returns_awaitable"})  #: on the first attempt
#: where a path disagrees with the judge: none (every path goes through it). An entry
#: names the cases, the scripts and why; such a case is an expected failure that holds only
#: while exactly those scripts disagree.
KNOWN: list[Known] = []


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
    every = [
        Case(api, flavor, items, cache, route, js.Config(**dict(zip(JUDGED, judged))))
        for flavor, items, routes, kept in ways
        for cache in CACHES
        for route in routes
        for judged in itertools.product(*(kept.get(k, v) for k, v in JUDGED.items()))
    ]
    return [  # (a case of no script: none; budgets per value need fallback values)
        param(case)
        for case in every
        if case.scripts() and not (case.route == "per_value" and case.config.fallback == "none")
    ]


def check(case: Case, got: dict[str, jm.Seen], want: dict[str, jm.Seen]) -> None:
    """Every script as wanted, except exactly the ones :data:`KNOWN` lists for ``case``."""
    wrong = {s: jm.differences(got[s], want[s]) for s in want if got[s] != want[s]}
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
    check(
        case, {s: case.call(s) for s in scripts}, {s: jm.wanted(case.config, s)[0] for s in scripts}
    )


@pytest.mark.parametrize("case", cases("map"))
def test_a_map_item_ends_as_the_call_does(case: Case, tmp_path: Any) -> None:
    got: dict[str, jm.Seen] = {}
    want: dict[str, jm.Seen] = {}
    for n, items in enumerate(case.maps()):
        log = js.fresh_log()
        if case.flavor.startswith("process"):  # workers count attempts in files
            (tmp_path / str(n)).mkdir()
            log = str(tmp_path / str(n))
        got |= case.map(log, items)
        want |= jm.map_wanted(case.config, items)
    check(case, got, want)
