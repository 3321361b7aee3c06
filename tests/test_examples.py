"""Every example that needs nothing but Python runs, so none can rot. (The Redis and Dask
examples run in tests/test_redis.py and tests/test_dask.py against real servers.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_metrics_hooks_example() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "metrics_hooks.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "[small] hello" in out.stdout
    assert "'retry': 1" in out.stdout
    assert "'fallback': 2" in out.stdout
    assert "'cache_hit': 1" in out.stdout
    assert "'retry:RetryDetails': 1" in out.stdout


def run_example(name: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_llm_fallback_example() -> None:
    text = run_example("llm_fallback.py")
    assert "tried ['large'" in text
    assert "cached:" in text
    assert "all failed: 4 attempts" in text


def test_llm_limits_map_example() -> None:
    text = run_example("llm_limits_map.py")
    assert "40 answers" in text
    in_flight = int(text.split("at most ")[1].split()[0])
    assert 1 <= in_flight <= 4  # concurrency=4
    assert "calls=40" in text and "'small'" in text
    assert "CacheInfo(hits=10, misses=40" in text


def test_openai_keys_models_example() -> None:
    text = run_example("openai_keys_models.py")
    assert "90 answers from gpt-big" in text
    assert "ask_small: gpt-small: ok" in text
    per_key = [int(n) for n in text.split("per key: [")[1].split("]")[0].split(",")]
    assert all(25 <= n <= 35 for n in per_key), per_key  # spread over the three keys
    assert "429s: 0" in text  # every (key, model) budget kept
    took = float(text.split(" in ")[1].split("s")[0])
    # the request limits allow 90 in 7.5 s; token estimates alone (150 each) would take 11 s:
    # the answers' real usage (60) corrected them
    assert took < 10.5, took


def test_http_clients_example() -> None:
    text = run_example("http_clients.py")
    times = {
        line.split(":")[0]: float(line.rsplit(" in ", 1)[1][:-1])
        for line in text.split("\n")
        if " in " in line
    }
    assert set(times) == {"openai", "anthropic", "httpx", "requests", "aiohttp"}
    assert times["openai"] < 0.9  # the paused model was skipped for the next one
    assert all(0.9 <= t < 5 for name, t in times.items() if name != "openai")  # Retry-After: 1


def test_llm_fallback_async_example() -> None:
    assert "30 answers" in run_example("llm_fallback_async.py")


def test_api_key_fallback_example() -> None:
    text = run_example("api_key_fallback.py")
    assert "charged 10 with key-3" in text
    assert "not retried" in text


def test_disk_cache_restart_example() -> None:
    text = run_example("disk_cache_restart.py")
    first, second = (line for line in text.splitlines() if "[0, 1, 4, 9, 16]" in line)
    assert first.startswith("first run") and second.startswith("after restart")
    assert float(second.rsplit(" in ", 1)[1].rstrip("s")) < float(
        first.rsplit(" in ", 1)[1].rstrip("s")
    )


def test_rate_limited_crawl_example() -> None:
    text = run_example("rate_limited_crawl.py")
    assert "30 pages" in text and "all 200: True" in text


def test_process_cpu_map_example() -> None:
    assert "24 counts" in run_example("process_cpu_map.py")


def test_async_map_example() -> None:
    assert "200 lookups" in run_example("async_map.py")


def test_process_async_map_example() -> None:
    assert "40 results" in run_example("process_async_map.py")


def test_every_example_is_tested() -> None:
    tested = {
        "metrics_hooks.py",
        "llm_fallback.py",
        "llm_limits_map.py",
        "http_clients.py",
        "llm_fallback_async.py",
        "api_key_fallback.py",
        "disk_cache_restart.py",
        "rate_limited_crawl.py",
        "process_cpu_map.py",
        "async_map.py",
        "process_async_map.py",
        "openai_keys_models.py",
        "shared_redis.py",  # tests/test_redis.py
        "dask_cluster.py",  # tests/test_dask.py
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
