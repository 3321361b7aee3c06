"""Logging and hooks: silent by default, DEBUG events when enabled, hooks with frozen payloads."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest
from loguru import logger

from opero import AllFailedError, opero
from opero.core.hooks import CacheHitDetails


@pytest.fixture
def log() -> list[str]:
    records: list[str] = []
    logger.enable("opero")
    sink = logger.add(
        lambda m: records.append(f"{m.record['level'].name} {m.record['message']}"),
        level="TRACE",
        format="{message}",
    )
    yield records
    logger.remove(sink)
    logger.disable("opero")


def test_disabled_by_default_in_a_fresh_process() -> None:
    code = (
        "import sys\n"
        "from loguru import logger\n"
        "logger.remove(); logger.add(sys.stdout, level='DEBUG')\n"
        "from opero import opero\n"
        "@opero(retries=1, min_delay=0)\n"
        "def f():\n"
        "    raise ValueError\n"
        "try:\n"
        "    f()\n"
        "except ValueError:\n"
        "    print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "done"
    assert out.stderr == ""


def test_debug_events_when_enabled(clock, log: list[str]) -> None:
    @opero(retries=1, arg_fallback="model", rate_limit=1, jitter=False)
    def ask(model: list[str] = ["a", "b"]) -> str:
        raise ConnectionError(model)

    with pytest.raises(AllFailedError):
        ask()
    text = "\n".join(log)
    assert "TRACE ask: cache miss" in text.replace("test_debug_events_when_enabled.<locals>.", "")
    assert "round 1/2, model='a' failed" in text
    assert "DEBUG" in next(line for line in log if "falling back to model='b'" in line)
    assert "DEBUG" in next(line for line in log if "round 1 failed, sleeping 0.100s" in line)
    assert "TRACE" in next(line for line in log if "rate limit, waiting 1.000s" in line)
    final = [line for line in log if line.startswith("WARNING")]
    assert len(final) == 1 and "call failed: AllFailedError" in final[0]
    assert "ask" in final[0] and "args: " in final[0]


def test_memory_hit_emits_no_record(log: list[str]) -> None:
    @opero()
    def f(x: int) -> int:
        return x

    f(1)
    before = len(log)
    f(1)
    assert len(log) == before


def test_on_cache_hit_hook() -> None:
    hits: list[CacheHitDetails] = []

    @opero(on_cache_hit=hits.append)
    def f(x: int) -> int:
        return x

    f(1)
    assert hits == []
    f(1)
    assert len(hits) == 1
    assert dataclasses.is_dataclass(hits[0])
    assert hits[0].backend == "memory"
    assert hits[0].name.endswith("f")
    with pytest.raises(dataclasses.FrozenInstanceError):
        hits[0].backend = "x"  # type: ignore[misc]


def test_hook_errors_are_logged_and_ignored(clock, log: list[str]) -> None:
    def broken(details: object) -> None:
        raise RuntimeError("hook bug")

    @opero(retries=1, on_retry=broken, on_cache_hit=broken)
    def f(x: int) -> int:
        if not clock.sleeps:
            raise ConnectionError
        return x

    assert f(1) == 1
    assert f(1) == 1  # a hit with a broken hook still returns
    assert any("raised; ignored" in m for m in log)


def test_metrics_from_hooks(clock) -> None:
    metrics = {"retries": 0, "fallbacks": 0, "hits": 0}

    def count(name: str):  # type: ignore[no-untyped-def]
        def hook(details: object) -> None:
            metrics[name] += 1

        return hook

    attempts = {"n": 0}

    @opero(
        retries=2,
        arg_fallback="model",
        on_retry=count("retries"),
        on_fallback=count("fallbacks"),
        on_cache_hit=count("hits"),
    )
    def ask(q: str, model: list[str] = ["a", "b"]) -> str:
        attempts["n"] += 1
        if attempts["n"] < 4:
            raise ConnectionError
        return model  # type: ignore[return-value]

    assert ask("x") == "b"
    ask("x")
    assert metrics == {"retries": 1, "fallbacks": 2, "hits": 1}


def test_cache_hit_hook_and_stats_agree_under_many_threads(tmp_path) -> None:
    """Every call the hook reports as a hit is a hit in stats() and cache_info(), also when
    64 threads race on the same keys (a call that finds the value only after another
    caller stored it is one the cache did not answer at once: neither counts it)."""
    import threading

    hits: list[object] = []

    # entries expire at once: many refills, each racing other threads' lookups
    @opero(on_cache_hit=hits.append, cache_backend="disk", cache_dir=tmp_path, cache_ttl=0.01)
    def slow(x: int) -> int:
        time.sleep(0.0005)
        return x

    def worker(seed: int) -> None:
        for i in range(200):
            slow((seed + i) % 4)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = slow.stats()
    assert stats.calls == 64 * 200
    assert len(hits) == stats.cache_hits == slow.cache_info().hits


def test_a_failed_map_item_is_logged_once_with_its_index(log: list[str]) -> None:
    from opero import operomap

    @operomap(
        mode="thread", workers=2, retries=1, min_delay=0, progress=False, return_exceptions=True
    )
    def work(x: int) -> int:
        if x == 3:
            raise ValueError("bad item")
        return x

    assert work(range(5))[3].args == ("bad item",)
    warnings = [line for line in log if line.startswith("WARNING")]
    assert len(warnings) == 1 and "item 3 failed" in warnings[0] and "args: 3" in warnings[0]
