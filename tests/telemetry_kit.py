"""The OpenTelemetry SDK set up once for the tests of this process: every span goes to an
in-memory exporter, every metric to an in-memory reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import opero.telemetry

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()
_installed: list[bool] = []


def install() -> None:
    if not _installed:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SPANS))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))
        _installed.append(True)


@pytest.fixture
def otel() -> Iterator[InMemorySpanExporter]:
    """Spans of this test only; telemetry disabled again afterwards."""
    install()
    SPANS.clear()
    READER.get_metrics_data()
    yield SPANS
    opero.telemetry.disable()


def spans(name: str | None = None) -> list[ReadableSpan]:
    return [s for s in SPANS.get_finished_spans() if name is None or s.name == name]


def children(parent: ReadableSpan) -> list[ReadableSpan]:
    """The finished spans whose parent is ``parent``, in start order."""
    found = [
        s
        for s in SPANS.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def totals() -> dict[tuple[str, frozenset[tuple[str, Any]]], float]:
    """Every metric point so far: (name, attributes) -> counter sum or histogram count."""
    out: dict[tuple[str, frozenset[tuple[str, Any]]], float] = {}
    data = READER.get_metrics_data()
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "count", None)
                    if value is None:
                        value = point.value  # type: ignore[union-attr]
                    key = (metric.name, frozenset(dict(point.attributes or {}).items()))
                    out[key] = value
    return out


def total(
    seen: dict[tuple[str, frozenset[tuple[str, Any]]], float], name: str, **match: Any
) -> float:
    """The sum over the points of ``name`` whose attributes include ``match`` (dots for
    underscores: ``opero_function="f"``)."""
    want = {k.replace("_", "."): v for k, v in match.items()}
    return sum(
        value
        for (metric, point), value in seen.items()
        if metric == name and want.items() <= dict(point).items()
    )
