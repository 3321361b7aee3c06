"""``python -m opero``: a tour of every mechanism against a simulated flaky service.

No network, embedded defaults, a few seconds. Each section prints what happened.
``--trace`` also records the tour with OpenTelemetry (it needs ``opentelemetry-sdk``) and
prints the tree of its spans at the end.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import sys
import time
from typing import Any

from opero import AllFailedError, opero
from opero.core.hooks import FallbackDetails, RetryDetails
from opero.core.span_tree import tree_lines


class FlakyService:
    """A pretend LLM API: "big" and "huge" are overloaded, "medium" fails now and then."""

    def __init__(self, seed: int = 7) -> None:
        self.random = random.Random(seed)
        self.calls: list[str] = []
        self.start = time.monotonic()

    def complete(self, prompt: str, model: str) -> str:
        self.calls.append(model)
        time.sleep(0.02)  # network latency
        if model in ("big", "huge"):
            raise ConnectionError(f"503 {model} is overloaded")
        if model == "medium" and self.random.random() < 0.5:
            raise TimeoutError("medium timed out")
        return f"[{model}] answer to {prompt!r}"


def say(text: str = "") -> None:
    print(text, flush=True)


def on_retry(d: RetryDetails) -> None:
    say(f"    retry: round {d.round}/{d.rounds} failed ({d.error!r}); waiting {d.delay:.2f}s")


def on_fallback(d: FallbackDetails) -> None:
    say(f"    fallback: {d.param}={d.failed_value!r} failed ({d.error}); trying {d.next_value!r}")


#: the span of the section being run (``--trace``): (span, context token)
_OPEN: list[Any] = []


def section(title: str) -> None:
    say()
    say(f"== {title}")
    if _OPEN or TRACE:
        _close_section()
        from opentelemetry import context, trace

        span = trace.get_tracer("opero.demo").start_span(title)
        _OPEN.append((span, context.attach(trace.set_span_in_context(span))))


def _close_section() -> None:
    if _OPEN:
        from opentelemetry import context

        span, token = _OPEN.pop()
        context.detach(token)
        span.end()


TRACE: list[Any] = []  #: the in-memory exporter of ``--trace``


def _start_tracing() -> str | None:
    """Send the tour's spans to memory; what is missing, if something is."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError:
        return "--trace needs the OpenTelemetry SDK: pip install 'opero[otel]' opentelemetry-sdk"
    from opero import telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    telemetry.enable()
    TRACE.append(exporter)
    return None


def _print_tree() -> None:
    """The recorded spans as a tree; siblings alike (waits aside) shown once."""
    _close_section()
    spans = TRACE[0].get_finished_spans()
    say()
    say(f"== the span tree of the tour ({len(spans)} spans)")
    for line in tree_lines(spans):
        say(line)


def _refused(args: list[str]) -> int | None:
    """The exit status of a command line the tour does not run (``--trace`` starts tracing)."""
    if args and args != ["--trace"]:
        say("usage: python -m opero [--trace]")
        return 2
    missing = _start_tracing() if args else None
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1
    return None


def main(argv: list[str] | None = None) -> int:
    refused = _refused(sys.argv[1:] if argv is None else argv)
    if refused is not None:
        return refused
    service = FlakyService()

    section("1. cache: the second identical call is answered from memory")

    @opero(retries=0)
    def ask_cached(prompt: str) -> str:
        return service.complete(prompt, "small")

    t0 = time.perf_counter()
    ask_cached("hello")
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    ask_cached("hello")
    second = time.perf_counter() - t0
    say(
        f"    first call {first * 1000:.1f} ms (service called), second {second * 1e6:.1f} us (hit)"
    )
    say(f"    service calls: {len(service.calls)}")

    section("2. retry with backoff: 'medium' fails at random, opero tries again")
    service.calls.clear()

    @opero(cache=False, retries=5, min_delay=0.05, backoff_factor=2, on_retry=on_retry)
    def ask_medium(prompt: str) -> str:
        return service.complete(prompt, "medium")

    for i in range(3):
        say(f"    -> {ask_medium(f'question {i}')}")
    say(f"    service calls: {len(service.calls)} for 3 answers")

    section("3. fallback: try each model in order until one answers")
    service.calls.clear()

    @opero(
        cache=False,
        retries=1,
        min_delay=0.05,
        arg_fallback="model",
        on_fallback=on_fallback,
        on_retry=on_retry,
    )
    def ask(prompt: str, model: Any = ("big", "medium", "small")) -> str:
        return service.complete(prompt, model)

    say(f"    -> {ask('what is opero?')}")
    say(f"    models called in order: {service.calls}")

    section("4. when every model fails: AllFailedError lists every attempt")

    @opero(cache=False, retries=1, min_delay=0.05, arg_fallback="model")
    def ask_big_only(prompt: str, model: Any = ("big", "huge")) -> str:
        return service.complete(prompt, model)

    try:
        ask_big_only("anything")
    except AllFailedError as group:
        say(f"    {group}")
        for exc in group.exceptions:
            say(f"      {exc!r:45} {'; '.join(getattr(exc, '__notes__', []))}")

    section("5. a global rate limit: 8 threads share 20 calls/s")
    from concurrent.futures import ThreadPoolExecutor

    starts: list[float] = []

    @opero(cache=False, rate_limit=20)
    def tick(i: int) -> int:
        starts.append(time.monotonic())
        return i

    here = contextvars.copy_context()  # the threads' calls belong to this section (--trace)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: here.copy().run(tick, i), range(16)))
    starts.sort()
    span = starts[-1] - starts[0]
    say(f"    16 calls in {span:.2f}s = {15 / span:.1f} calls/s")

    section("6. async: the same decorator on async def, single-flight on concurrent misses")
    computed = 0

    @opero(rate_limit=50, retries=2, min_delay=0.02)
    async def fetch(url: str) -> str:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.05)
        return f"<page {url}>"

    async def crawl() -> list[str]:
        urls = [f"https://example.test/{i % 5}" for i in range(20)]
        return await asyncio.gather(*(fetch(u) for u in urls))

    t0 = time.perf_counter()
    pages = asyncio.run(crawl())
    took = time.perf_counter() - t0
    say(
        f"    20 requests for 5 distinct URLs: {len(pages)} pages, {computed} real fetches, "
        f"{took:.2f}s"
    )

    section("7. operomap: 40 prompts over 4 threads, fallbacks per item, one global rate limit")
    from opero import operomap

    service.calls.clear()

    @operomap(
        mode="thread",
        workers=4,
        cache=False,
        retries=1,
        min_delay=0.02,
        arg_fallback="model",
        rate_limit=100,
    )
    def answer(prompt: str, model: Any = ("big", "medium", "small")) -> str:
        return service.complete(prompt, model)

    t0 = time.perf_counter()
    answers = answer([f"prompt {i}" for i in range(40)])
    took = time.perf_counter() - t0
    small = sum(a.startswith("[small]") for a in answers)
    say(
        f"    {len(answers)} answers in {took:.2f}s ({len(service.calls)} attempts at most "
        f"100/s in total); {len(answers) - small} from 'medium', {small} from 'small'"
    )
    say("    (on a terminal, a progress bar is drawn on stderr while the map runs)")

    say()
    say("all mechanisms worked: cache, retry, fallback, errors, rate limit, async, map")
    if TRACE:
        _print_tree()
    return 0


if __name__ == "__main__":
    sys.exit(main())
