"""operomap on a real Dask LocalCluster (2 worker processes) and on any Executor."""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest

from opero import OperomapError, operomap

from . import map_helpers as h
from .recording import record_admissions

distributed = pytest.importorskip("distributed", reason="the opero[dask] extra is not installed")


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    from distributed import Client, LocalCluster

    local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(local, set_as_default=False)
    yield local, client
    client.close()
    local.close()


def dmap(fn: Any, client: Any, **options: Any) -> Any:
    options.setdefault("progress", False)
    options.setdefault("cache", False)
    return operomap(mode="dask", client=client, **options)(fn)


@pytest.mark.parametrize("ordered", [True, False])
def test_results_and_ordering(cluster, ordered: bool) -> None:
    _, client = cluster
    got = dmap(h.square, client, ordered=ordered)(range(50), add=1)
    expected = [x * x + 1 for x in range(50)]
    assert got == expected if ordered else sorted(got) == expected


async def test_async_function_on_dask(cluster) -> None:
    _, client = cluster
    assert await dmap(h.asquare, client)(range(10)) == [x * x for x in range(10)]


def test_failures_raise_operomap_error(cluster) -> None:
    _, client = cluster
    with pytest.raises(OperomapError) as info:
        dmap(h.fail_on_three, client, retries=1, min_delay=0)(range(6))
    err = info.value
    assert err.results[:3] == [0, 1, 2] and err.results[4:] == [4, 5]
    assert isinstance(err.results[3], ValueError)
    assert "operomap item 3" in err.results[3].__notes__


def test_given_client_is_not_closed(cluster) -> None:
    _, client = cluster
    dmap(h.square, client)(range(3))
    assert client.status == "running"
    assert client.submit(h.square, 3).result() == 9


def test_worker_lost_mid_map_and_the_map_completes(cluster) -> None:
    _, client = cluster
    f = dmap(h.slow_square, client, retries=2, min_delay=0)
    out: list[Any] = []
    runner = threading.Thread(target=lambda: out.append(f(range(30))))
    runner.start()
    time.sleep(0.5)  # not a timing assertion: let tasks reach both workers
    victim = next(iter(client.scheduler_info()["workers"]))
    try:  # kill one worker process for real (it dies before it can answer)
        client.run(os._exit, 1, workers=[victim])
    except Exception:
        pass
    runner.join(120)
    assert out and out[0] == [x * x for x in range(30)]


def test_rate_limit_global_across_dask_workers(cluster, clock) -> None:
    _, client = cluster
    f = dmap(h.square, client, rate_limit=10)
    booked = record_admissions(f)
    assert f(range(12)) == [x * x for x in range(12)]
    gaps = [round(b - a, 9) for a, b in zip(booked, booked[1:])]
    assert gaps == [0.1] * 11


def test_redis_cache_shared_with_a_second_client(cluster, redis_url, redis_server) -> None:
    from distributed import Client

    local, client = cluster
    first = dmap(h.counted_double, client, cache=True, cache_backend="redis", cache_url=redis_url)
    assert first(range(8), redis_url) == [x * 2 for x in range(8)]
    assert int(redis_server.client().get("computations")) == 8
    with Client(local.scheduler_address, set_as_default=False) as second_client:
        second = dmap(
            h.counted_double, second_client, cache=True, cache_backend="redis", cache_url=redis_url
        )
        assert second(range(8), redis_url) == [x * 2 for x in range(8)]
    assert int(redis_server.client().get("computations")) == 8  # every item was a hit


def test_address_connects_without_closing_the_cluster(cluster) -> None:
    local, _ = cluster
    f = operomap(mode="dask", address=local.scheduler_address, cache=False, progress=False)(
        h.square
    )
    assert f(range(5)) == [0, 1, 4, 9, 16]
    assert f(range(3)) == [0, 1, 4]  # the cluster is still there


def test_local_cluster_started_and_closed_for_the_call() -> None:
    f = operomap(mode="dask", workers=2, cache=False, progress=False)(h.pid_of)
    pids = set(f(range(20)))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    time.sleep(0.5)
    for pid in pids:  # the cluster's worker processes are gone
        assert (
            not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
        )


def test_dask_missing_fails_at_decoration(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'opero\[dask\]'"):
        operomap(mode="dask")(h.square)


# ----- any concurrent.futures.Executor --------------------------------------------------------


def test_thread_pool_executor_not_shut_down() -> None:
    with ThreadPoolExecutor(4) as pool:
        f = operomap(executor=pool, cache=False, progress=False)(lambda x: x + 1)
        assert f(range(20)) == list(range(1, 21))
        assert pool.submit(lambda: 7).result() == 7  # still open


def test_process_pool_executor_not_shut_down() -> None:
    with ProcessPoolExecutor(2) as pool:
        f = operomap(executor=pool, cache=False, progress=False)(h.square)
        assert f(range(20)) == [x * x for x in range(20)]
        assert pool.submit(h.square, 4).result() == 16


def test_client_get_executor(cluster) -> None:
    _, client = cluster
    f = operomap(executor=client.get_executor(), cache=False, progress=False)(h.square)
    assert f(range(10)) == [x * x for x in range(10)]


def test_executor_options_validated() -> None:
    with pytest.raises(TypeError, match="concurrent.futures.Executor"):
        operomap(executor="pool")(h.square)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="go with mode='dask'"):
        operomap(mode="thread", address="tcp://127.0.0.1:8786")(h.square)
    with pytest.raises(ValueError, match="go with mode='dask'"):
        operomap(mode="process", client=object())(h.square)
    with pytest.raises(TypeError, match="cannot load"):
        with ProcessPoolExecutor(1) as pool:
            operomap(executor=pool)(lambda x: x)


def test_dask_cluster_example_runs(cluster) -> None:
    import subprocess
    from pathlib import Path

    local, _ = cluster
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "dask_cluster.py"), local.scheduler_address],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root / "examples",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "40 results" in out.stdout
    assert "second call from the cache" in out.stdout
