"""P22 (docs/performance.md): what ``telemetry=True`` costs on the success path.

``@opero(cache=False, retries=3, telemetry=True)`` on a sync function that succeeds, with the
OpenTelemetry SDK sending spans to an in-memory exporter: (a) no meter provider configured;
(b) also a ``MeterProvider`` with an in-memory reader. The peer is the same work written by
hand with the OpenTelemetry API: two nested ``start_as_current_span`` blocks carrying the same
attributes, and in (b) the same counter and histogram recordings opero makes (a call, an
attempt, the attempt's duration). The global providers can be set once per process, so (a)
runs before (b).
"""

from __future__ import annotations

import time
import timeit
from typing import Any

from opero import opero

__all__ = ["p22"]


def _best_ns(call: Any, number: int, repeat: int, exporter: Any) -> float:
    best = float("inf")
    timer = timeit.Timer("f(1)", globals={"f": call})
    for _ in range(repeat):
        exporter.clear()  # the spans of one repeat only are kept in memory
        best = min(best, timer.timeit(number=number) / number * 1e9)
    return best


def p22(number: int, repeat: int, Row: Any) -> tuple[list[Any], dict[str, float]]:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("by hand")
    meter = metrics.get_meter("by hand")
    calls = meter.create_counter("calls")
    attempts = meter.create_counter("attempts")
    duration = meter.create_histogram("attempt.duration", "s")

    def bare(x: int) -> int:
        return x

    name = bare.__qualname__
    who = {"opero.function": name}

    def spans_only(x: int) -> int:
        with tracer.start_as_current_span(f"opero {name}", attributes=who) as call:
            with tracer.start_as_current_span(
                "opero.attempt", attributes={**who, "opero.attempt.round": 1}
            ) as attempt:
                result = bare(x)
                attempt.set_attribute("opero.attempt.outcome", "success")
            call.set_attribute("opero.cache.hit", False)
        return result

    def with_metrics(x: int) -> int:
        with tracer.start_as_current_span(f"opero {name}", attributes=who) as call:
            with tracer.start_as_current_span(
                "opero.attempt", attributes={**who, "opero.attempt.round": 1}
            ) as attempt:
                started = time.perf_counter()
                result = bare(x)
                elapsed = time.perf_counter() - started
                attempt.set_attribute("opero.attempt.outcome", "success")
                done = {**who, "opero.attempt.outcome": "success"}
                attempts.add(1, done)
                duration.record(elapsed, done)
            call.set_attribute("opero.cache.hit", False)
        calls.add(1, who)
        return result

    ours = opero(cache=False, retries=3, telemetry=True)(bare)
    n = max(1, number // 10)
    figures = {
        "opero (a)": _best_ns(ours, n, repeat, exporter),
        "by hand (a)": _best_ns(spans_only, n, repeat, exporter),
    }
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    figures["opero (b)"] = _best_ns(ours, n, repeat, exporter)
    figures["by hand (b)"] = _best_ns(with_metrics, n, repeat, exporter)
    rows = []
    for case in ("a", "b"):
        o, p = figures[f"opero ({case})"], figures[f"by hand ({case})"]
        what = "spans" if case == "a" else "spans + metrics"
        label = f"P22 telemetry=True success path, {what}"
        rows.append(Row(label, o, "OTel API by hand", p, "<= 1.5", o <= 1.5 * p))
    return rows, figures
