"""opero benchmarks: each case side by side with the peers a user would otherwise pick.

    uv run --group bench python benchmarks/run.py [--quick]

Prints a table (case, opero, peer, ratio, target, PASS/FAIL). Every figure is the best of
several repeats measured in this one process, so ratios compare like with like on a noisy
machine. Targets are in PERFORMANCE.md of the project's shared notes (P1-P3, P9).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import subprocess
import sys
import threading
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger  # noqa: F401 - imported by opero anyway; keep import cost out of timings

from opero import opero


@dataclass
class Row:
    case: str
    ours: float
    peer_name: str
    peer: float
    target: str
    ok: bool
    unit: str = "ns"

    @property
    def ratio(self) -> float:
        return self.ours / self.peer if self.peer else float("nan")


def best_ns(func: Callable[[int], Any], number: int, repeat: int) -> float:
    """Best-of-``repeat`` nanoseconds per ``func(1)`` (timeit, no per-call lambda)."""
    timer = timeit.Timer("f(1)", globals={"f": func})
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def best_ns_async(make: Callable[[], Any], number: int, repeat: int) -> float:
    async def loop() -> float:
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter_ns()
            for _ in range(number):
                await make()
            best = min(best, (time.perf_counter_ns() - start) / number)
        return best

    return asyncio.run(loop())


# ----- P1 / P2: the success path of a retrying decorator ---------------------------------------


def p1(number: int, repeat: int) -> tuple[list[Row], dict[str, float]]:
    import backoff
    import stamina
    import tenacity

    def bare(x: int) -> int:
        return x

    @functools.wraps(bare)
    def plain_wrapper(x: int) -> int:
        return bare(x)

    ours = opero(cache=False, retries=3)(bare)
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(4), reraise=True)(bare)
    sta = stamina.retry(on=Exception, attempts=4)(bare)
    bac = backoff.on_exception(backoff.expo, Exception, max_tries=4)(bare)
    figures = {
        "bare": best_ns(bare, number, repeat),
        "functools.wraps": best_ns(plain_wrapper, number, repeat),
        "opero": best_ns(ours, number, repeat),
        "tenacity": best_ns(ten, number // 10, repeat),
        "stamina": best_ns(sta, number // 10, repeat),
        "backoff": best_ns(bac, number // 5, repeat),
    }
    o = figures["opero"]
    rows = [
        Row(
            "P1 sync success path",
            o,
            "tenacity",
            figures["tenacity"],
            "<= 1/20",
            o <= figures["tenacity"] / 20,
        ),
        Row(
            "P1 sync success path", o, "backoff", figures["backoff"], "< 1", o < figures["backoff"]
        ),
        Row("P1 sync success path", o, "stamina", figures["stamina"], "(info)", True),
        Row(
            "P1 sync success path",
            o,
            "functools.wraps",
            figures["functools.wraps"],
            "(limit)",
            True,
        ),
    ]
    return rows, figures


def p2(number: int, repeat: int) -> tuple[list[Row], dict[str, float]]:
    import backoff
    import stamina
    import tenacity

    async def bare(x: int) -> int:
        return x

    ours = opero(cache=False, retries=3)(bare)
    ten = tenacity.retry(stop=tenacity.stop_after_attempt(4), reraise=True)(bare)
    sta = stamina.retry(on=Exception, attempts=4)(bare)
    bac = backoff.on_exception(backoff.expo, Exception, max_tries=4)(bare)
    figures = {
        "bare": best_ns_async(lambda: bare(1), number, repeat),
        "opero": best_ns_async(lambda: ours(1), number, repeat),
        "tenacity": best_ns_async(lambda: ten(1), number // 10, repeat),
        "stamina": best_ns_async(lambda: sta(1), number // 10, repeat),
        "backoff": best_ns_async(lambda: bac(1), number // 5, repeat),
    }
    o = figures["opero"]
    rows = [
        Row(
            "P2 async success path",
            o,
            "tenacity",
            figures["tenacity"],
            "<= 1/20",
            o <= figures["tenacity"] / 20,
        ),
        Row("P2 async success path", o, "backoff", figures["backoff"], "(info)", True),
        Row("P2 async success path", o, "stamina", figures["stamina"], "(info)", True),
        Row("P2 async success path", o, "bare await", figures["bare"], "(limit)", True),
    ]
    return rows, figures


# ----- P3: a memory-cache hit ----------------------------------------------------------------


def p3(number: int, repeat: int) -> tuple[list[Row], dict[str, float]]:
    import cachebox
    import cachetools

    def bare(x: int) -> int:
        return x

    ours = opero()(bare)
    ct = cachetools.cached(cachetools.TTLCache(maxsize=10_000, ttl=3600), lock=threading.Lock())(
        bare
    )
    cb = cachebox.cached(cachebox.TTLCache(10_000, 3600))(bare)
    lru = functools.lru_cache(maxsize=10_000)(bare)
    for f in (ours, ct, cb, lru):
        f(1)
    figures = {
        "opero": best_ns(ours, number, repeat),
        "cachetools+lock": best_ns(ct, number, repeat),
        "cachebox": best_ns(cb, number, repeat),
        "lru_cache": best_ns(lru, number, repeat),
    }
    o = figures["opero"]
    rows = [
        Row(
            "P3 memory cache hit",
            o,
            "cachetools+lock",
            figures["cachetools+lock"],
            "<= 1",
            o <= figures["cachetools+lock"],
        ),
        Row("P3 memory cache hit", o, "cachebox", figures["cachebox"], "(aim <= 1)", True),
        Row("P3 memory cache hit", o, "lru_cache", figures["lru_cache"], "(limit)", True),
    ]
    return rows, figures


# ----- P9: import time -----------------------------------------------------------------------


def p9(repeat: int) -> tuple[list[Row], dict[str, float]]:
    """Wall time of ``python -c "import X"``, best of ``repeat``, runs interleaved.

    Bytecode caches are written first (a warm-up import with PYTHONDONTWRITEBYTECODE unset),
    so both sides are measured as an installed package runs.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    modules = {"python": "sys", "loguru": "loguru", "opero": "opero"}
    for module in modules.values():
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
    best = dict.fromkeys(modules, float("inf"))
    for _ in range(repeat):
        for name, module in modules.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
            best[name] = min(best[name], (time.perf_counter() - start) * 1000)
    o, peer = best["opero"], best["loguru"]
    rows = [Row("P9 import opero", o, "import loguru", peer, "<= +15 ms", o <= peer + 15, "ms")]
    return rows, best


def render(rows: list[Row]) -> str:
    lines = [
        "| case | opero | peer | peer time | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.case} | {r.ours:,.0f} {r.unit} | {r.peer_name} | {r.peer:,.0f} {r.unit} "
            f"| {r.ratio:.3f} | {r.target} | {'PASS' if r.ok else 'FAIL'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    number, repeat = (20_000, 3) if args.quick else (200_000, 7)
    rows: list[Row] = []
    for name, job in (
        ("P1", lambda: p1(number, repeat)),
        ("P2", lambda: p2(number, repeat)),
        ("P3", lambda: p3(number, repeat)),
        ("P9", lambda: p9(5 if args.quick else 15)),
    ):
        got, figures = job()
        rows += got
        print(f"{name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items()), file=sys.stderr)
    print(render(rows))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
