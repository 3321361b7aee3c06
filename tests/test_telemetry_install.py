"""Telemetry without the OpenTelemetry API (refused at decoration, naming the extra) and
with the API but no SDK (nothing recorded, calls unchanged), each in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_telemetry_without_the_api_fails_at_decoration_naming_the_extra() -> None:
    done = run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        import opero, opero.telemetry

        @opero.opero(cache=False)
        def fine(x):
            return x

        assert fine(1) == 1  # nothing else needs the API
        for attempt in (lambda: opero.opero(telemetry=True), opero.telemetry.enable):
            try:
                attempt()
            except ImportError as exc:
                print("refused:", exc)
            else:
                raise SystemExit("accepted")
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("opero[otel]" in line for line in lines)


def test_the_api_without_an_sdk_records_nothing_and_calls_stay_correct() -> None:
    done = run(
        """
        import asyncio
        import opero, opero.telemetry

        failures = [ValueError("once")]

        @opero.opero(telemetry=True, retries=2, min_delay=0, arg_fallback="v")
        def f(x, v=("a", "b")):
            if failures:
                raise failures.pop()
            return (x, v)

        @opero.opero(telemetry=True, cache=False, retries=0)
        async def g(x):
            raise KeyError(x)

        @opero.opero(cache=False, rate_limit=1000)
        def h(x):
            return x

        assert f(1) == (1, "b") and f(1) == (1, "b")
        try:
            asyncio.run(g(2))
        except KeyError:
            pass
        else:
            raise SystemExit("no KeyError")
        opero.telemetry.enable()
        assert [h(i) for i in range(3)] == [0, 1, 2]
        s = f.stats()
        print(s.calls, s.cache_hits, s.attempts, h.stats().calls)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "1", "2", "3"]
    assert "detach" not in done.stderr
