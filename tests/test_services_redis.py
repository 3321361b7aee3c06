"""A Redis-backed ``Service`` shared by two real processes against a real redis-server, and
by two ``Service`` objects of one name in one process (pauses, breakers, per-value use)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

import opero
from opero import CircuitOpenError, Service
from tests.conftest import FakeClock
from tests.limited_server import LimitedServer
from tests.test_services import most_in_window

CALLER = """
import sys, time
import httpx
import opero

url, redis_url, name, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
service = opero.Service("4/s", backend="redis", name=name, url=redis_url)

client = httpx.Client(timeout=10)

@opero.opero(rate_limit=service, cache=False, retries=0)
def ask(i):
    r = client.post(url + "/v1/chat/completions", json={"model": "m"},
                    headers={"Authorization": "Bearer k1"})
    r.raise_for_status()
    return r.status_code

# connected before the start (with a key of no limit): a first request's setup, slow on a
# loaded machine, would otherwise delay one admitted request onto the next one
client.post(url + "/v1/chat/completions", json={"model": "m"},
            headers={"Authorization": "Bearer warm-up"}).raise_for_status()
time.sleep(max(0.0, start_at - time.time()))
print(sum(ask(i) == 200 for i in range(8)))
"""


@pytest.fixture
def server() -> Iterator[LimitedServer]:
    srv = LimitedServer(key_limits={"k1": (5, 1.0)}).start()
    yield srv
    srv.stop()


def test_two_processes_share_one_redis_service(server: LimitedServer, redis_url: str) -> None:
    start_at = time.time() + 3.0  # both processes begin together, once imported
    args = [server.url, redis_url, f"svc-{time.time_ns()}", str(start_at)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CALLER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], (outputs, sorted(server.times(key="k1")))
    assert [out.strip() for out, _ in outputs] == ["8", "8"]
    assert server.count(status=429) == 0
    times = server.times(key="k1")
    assert len(times) == 16
    assert most_in_window(times, 1.0) <= 5  # 4/s together: ceil(4 x 1) + 1
    assert max(times) - min(times) >= 3.2  # 16 admissions 0.25 s apart: 3.75 s


def test_services_of_one_name_share_pauses_and_breakers(redis_url: str, clock: FakeClock) -> None:
    name = f"svc-{time.time_ns()}"
    here = Service(cooldown=30, cooldown_after=1, backend="redis", name=name, url=redis_url)
    there = Service(cooldown=30, cooldown_after=1, backend="redis", name=name, url=redis_url)

    @opero.opero(rate_limit=here, retries=0, cache=False)
    def failing(x: int) -> int:
        raise ConnectionError("down")

    @opero.opero(rate_limit=there, retries=0, cache=False)
    def other(x: int) -> int:
        return x

    with pytest.raises(ConnectionError):
        failing(0)
    with pytest.raises(CircuitOpenError):
        other(1)  # the breaker opened in Redis: the other "process" sees it


def test_a_redis_service_as_a_per_value_budget(redis_url: str) -> None:
    name = f"svc-{time.time_ns()}"
    one = Service("5/s", backend="redis", name=name, url=redis_url)
    two = Service("5/s", backend="redis", name=name, url=redis_url)

    @opero.opero(rate_limit={"k": one}, arg_fallback="key", cache=False)
    def ask(x: int, key: str = "k") -> int:
        return x

    direct = opero.opero(rate_limit=two, cache=False)(lambda x: x)
    started = time.monotonic()
    for i in range(3):
        ask(i)
        direct(i)
    assert time.monotonic() - started >= 0.9  # six admissions 0.2 s apart on one schedule
