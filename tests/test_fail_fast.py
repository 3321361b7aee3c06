"""``@operomap(fail_fast=N)``: after N items in a row have failed, the map starts no further
item; those fail with ``MapStoppedError`` (caused by the last failure) without an attempt,
and items already running finish. Against a real local HTTP server that refuses the key."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from opero import AllFailedError, MapStoppedError, OperoError, OperomapError, operomap
from tests import sdk_clients as sdk
from tests.http_server import ScriptedServer, error_body

PATH = "/v1/chat/completions"
MODES = ["thread", "process", "async", "executor"]
QUIET: dict[str, Any] = dict(cache=False, progress=False, return_exceptions=True)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer().start()
    yield running
    running.stop()


@pytest.fixture
def refusing(server: ScriptedServer) -> Iterator[ScriptedServer]:
    """The server answers 401 (a wrong API key: permanent) to every request."""
    server.reset()
    server.defaults[PATH] = (401, {}, error_body(401))
    yield server
    server.reset()


def _mapped(mode: str, pool: ThreadPoolExecutor | None, **options: Any) -> Any:
    common: dict[str, Any] = dict(workers=4, cache=False, progress=False, **options)
    if mode == "executor":
        return operomap(executor=pool, **common)(sdk.httpx_post)
    if mode == "async":
        return operomap(mode="async", **common)(sdk.aiohttp_post)
    return operomap(mode=mode, **common)(sdk.httpx_post)


def _run(mapped: Any, mode: str, items: list[str], **kwargs: Any) -> Any:
    if mode == "async":
        return asyncio.run(mapped(items, **kwargs))
    return mapped(items, **kwargs)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_key_ends_the_map_after_n_items(refusing: ScriptedServer, mode: str) -> None:
    import httpx  # loaded before process workers fork

    assert httpx.__name__ == "httpx"
    with ThreadPoolExecutor(4) as pool:
        mapped = _mapped(mode, pool, arg_fallback="model", rate_limit=20, fail_fast=5, retries=3)
        started = time.monotonic()
        with pytest.raises(OperomapError) as info:
            _run(mapped, mode, [refusing.url] * 200, model=["a", "b"])
        elapsed = time.monotonic() - started
    results = info.value.results
    assert len(results) == 200
    assert all(isinstance(r, Exception) for r in results)
    failed = [r for r in results if isinstance(r, AllFailedError)]
    stopped = [r for r in results if isinstance(r, MapStoppedError)]
    assert len(failed) + len(stopped) == 200
    assert 5 <= len(failed) <= 5 + 4
    # every started item tried each value once: far fewer than 400 requests
    assert refusing.count() == 2 * len(failed) <= (5 + 4) * 2
    # 400 requests at 20/s would take 20 s
    assert elapsed < 8, elapsed
    # one round ran of the 4 configured (a 401 is permanent: no more rounds)
    assert "1 of 4 round(s) x 2 value(s)" in str(failed[0])
    assert all(isinstance(s, OperoError) for s in stopped)
    assert all(isinstance(s.__cause__, AllFailedError) for s in stopped)
    last = stopped[0].__cause__
    assert last is not None and any(last is f for f in failed)
    assert "fail_fast=5" in str(stopped[0])
    assert mapped.stats().attempts == refusing.count()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cache", [False, True])
def test_items_fed_in_bulk_to_processes_stop_too(refusing: ScriptedServer, cache: bool) -> None:
    """A plain process map feeds its items to the workers in jobs: the items in jobs already
    handed to a worker run; the jobs still queued are withdrawn."""
    import httpx

    assert httpx.__name__ == "httpx"
    refusing.decide = lambda path, body: (401, {}, error_body(401))
    urls = [f"{refusing.url}/{i}" for i in range(3000)]  # distinct cache keys
    mapped = operomap(
        mode="process",
        workers=2,
        cache=cache,
        progress=False,
        retries=0,
        fail_fast=5,
        return_exceptions=True,
    )(sdk.httpx_post)
    started = time.monotonic()
    results = mapped(urls)
    elapsed = time.monotonic() - started
    stopped = [r for r in results if isinstance(r, MapStoppedError)]
    failed = [r for r in results if isinstance(r, httpx.HTTPStatusError)]
    assert len(stopped) + len(failed) == 3000
    assert len(failed) == refusing.count() >= 5
    assert refusing.count() < 200, refusing.count()
    assert all(isinstance(s.__cause__, httpx.HTTPStatusError) for s in stopped)
    assert elapsed < 30, elapsed


def _every_fifth_succeeds(i: int) -> int:
    if i % 5:
        raise ValueError(f"item {i}")
    return i


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_a_success_resets_the_run(mode: str) -> None:
    five = operomap(mode=mode, workers=1, retries=0, fail_fast=5, **QUIET)(_every_fifth_succeeds)
    results = five(range(100))  # 4 failures, then a success, ...
    assert not any(isinstance(r, MapStoppedError) for r in results)
    assert [r for r in results if not isinstance(r, Exception)] == list(range(0, 100, 5))
    four = operomap(mode=mode, workers=1, retries=0, fail_fast=4, **QUIET)(_every_fifth_succeeds)
    assert sum(isinstance(r, MapStoppedError) for r in four(range(100))) == 95


def test_the_items_after_the_run_are_never_started() -> None:
    calls: list[int] = []

    def work(i: int) -> int:
        calls.append(i)
        return _every_fifth_succeeds(i)

    mapped = operomap(workers=1, retries=0, fail_fast=4, **QUIET)(work)
    results = mapped(range(50))
    assert calls == [0, 1, 2, 3, 4]
    assert results[0] == 0
    assert [type(r) for r in results[1:5]] == [ValueError] * 4
    assert all(type(r) is MapStoppedError for r in results[5:])
    assert all(r.__cause__ is results[4] for r in results[5:])
    assert "operomap item 7" in results[7].__notes__


def test_items_already_running_finish_and_keep_their_results() -> None:
    running = threading.Event()

    def work(i: int) -> str:
        if i == 0:
            running.set()
            time.sleep(0.5)
            return "slow"
        running.wait(5)
        raise ValueError(i)

    mapped = operomap(workers=2, cache=False, progress=False, retries=0, fail_fast=3)(work)
    with pytest.raises(OperomapError) as info:
        mapped(range(30))
    results = info.value.results
    assert results[0] == "slow"
    assert [type(r) for r in results[1:4]] == [ValueError] * 3
    assert all(type(r) is MapStoppedError for r in results[4:])


@pytest.mark.parametrize("ordered", [True, False])
def test_the_iterator_yields_the_stopped_items(ordered: bool) -> None:
    options: dict[str, Any] = dict(workers=1, retries=0, fail_fast=2, ordered=ordered)
    listing = operomap(**options, **QUIET)(_every_fifth_succeeds)
    got = list(listing.iter(range(20)))
    assert len(got) == 20
    assert sum(type(r) is MapStoppedError for r in got) == 17
    raising = operomap(**options, cache=False, progress=False)(_every_fifth_succeeds)
    with pytest.raises(OperomapError) as info:
        for _ in raising.iter(range(20)):
            pass
    assert sum(type(r) is MapStoppedError for r in info.value.exceptions) == 17
