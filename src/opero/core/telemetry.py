"""OpenTelemetry for opero: a span per call, a child span per attempt, and metrics (the
parts; :mod:`opero.telemetry` is the public switch).

``@opero(telemetry=True)`` traces one function; :func:`enable` traces every decorated
function left at the default (``telemetry=None``), those decorated before it included, until
:func:`disable`. ``telemetry=False`` opts a function out. Spans and instruments come from the
global OpenTelemetry providers (``opentelemetry-api``, the ``opero[otel]`` extra): without an
SDK configured they record nothing and calls behave exactly as without telemetry.

- the call: a span ``opero <qualified name>``, a child of the caller's current span, current
  during the whole call (its cache lookup included), with ``opero.function`` and
  ``opero.cache.hit``; waits before attempts are its ``opero.wait`` events
  (``opero.wait.reason``, ``opero.wait.seconds``);
- each attempt: a child span ``opero.attempt``, current while the attempt runs, with
  ``opero.function``, ``opero.attempt.round``, ``opero.fallback.value`` (a repr),
  ``opero.attempt.outcome`` and, when it fails, ``error.type`` and
  ``http.response.status_code`` (when the error carries one);
- metrics of the meter ``opero``: counters ``opero.calls``, ``opero.attempts``,
  ``opero.failures``, ``opero.cache.hits``, ``opero.retries`` and histograms
  ``opero.attempt.duration`` and ``opero.wait.duration`` (seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opero.core.deadline import AMBIENT
from opero.core.signals import http_status
from opero.options import require_otel

if TYPE_CHECKING:
    from opero.core.hooks import AttemptDetails, GiveUpDetails, WaitDetails

__all__ = [
    "Calls",
    "Telemetry",
    "current",
    "disable",
    "enable",
    "enabled",
    "observer",
    "require",
    "traced",
]

SUCCESS = "success"
require = require_otel  #: ``ImportError`` naming the ``opero[otel]`` extra without the API


def enable() -> None:
    """Trace and measure every function decorated with the default ``telemetry=None``
    (before or after this call) until :func:`disable`."""
    require()
    _parts()
    AMBIENT.traced = True
    AMBIENT.on = True  # the fast paths look at ``traced`` only once this is set


def disable() -> None:
    """Undo :func:`enable` (functions decorated with ``telemetry=True`` stay traced)."""
    AMBIENT.traced = False


def enabled() -> bool:
    """Whether :func:`enable` is in effect."""
    return AMBIENT.traced


class _Parts:
    """The tracer and the instruments, made once (through the API's global providers, so
    providers configured later are used)."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace

        from opero import __version__

        self.attach, self.detach = context.attach, context.detach
        self.in_context = trace.set_span_in_context
        self.error = trace.Status(trace.StatusCode.ERROR)
        self.tracer = trace.get_tracer("opero", __version__)
        meter = metrics.get_meter("opero", __version__)
        self.calls = meter.create_counter("opero.calls", "{call}", "calls of opero functions")
        self.attempts = meter.create_counter("opero.attempts", "{attempt}", "attempts made")
        self.failures = meter.create_counter(
            "opero.failures", "{attempt}", "attempts that failed, were rejected or timed out"
        )
        self.hits = meter.create_counter("opero.cache.hits", "{call}", "calls the cache answered")
        self.retries = meter.create_counter("opero.retries", "{round}", "rounds after the first")
        self.attempt_duration = meter.create_histogram(
            "opero.attempt.duration", "s", "how long each attempt took"
        )
        self.wait_duration = meter.create_histogram(
            "opero.wait.duration", "s", "waits before attempts (rate limit, backoff, ...)"
        )


_PARTS: list[_Parts] = []
_LOCK = threading.RLock()


def _parts() -> _Parts:
    if not _PARTS:
        with _LOCK:
            if not _PARTS:
                _PARTS.append(_Parts())
    return _PARTS[0]


class CallState:
    """One traced call: its span, the context that holds it, what it has seen."""

    __slots__ = ("attempted", "context", "round", "span")

    def __init__(self, span: Any, context: Any) -> None:
        self.span = span
        self.context = context
        self.attempted = False
        self.round = 0


#: the traced call being made in this context
CALL: ContextVar[CallState | None] = ContextVar("opero_telemetry_call", default=None)


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class, with its module unless a builtin."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _failed(parts: _Parts, span: Any, error: BaseException) -> None:
    span.set_attribute("error.type", error_type(error))
    status = http_status(error)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    span.record_exception(error)
    span.set_status(parts.error)


class Telemetry:
    """The observer told by the judge (see :class:`opero.core.watch.Observer`)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts = _parts()

    def attempt(self, details: AttemptDetails) -> Any:
        parts, state = self.parts, CALL.get()
        attrs: dict[str, Any] = {"opero.function": details.name}
        if details.value is not None:
            attrs["opero.fallback.value"] = repr(details.value)
        if state is not None:
            state.attempted = True
            if state.round and details.round > state.round:
                parts.retries.add(1, {"opero.function": details.name})
            state.round = details.round
        span = parts.tracer.start_span(
            "opero.attempt",
            None if state is None else state.context,
            attributes={**attrs, "opero.attempt.round": details.round},
        )
        token = parts.attach(parts.in_context(span))
        return span, token, attrs, time.perf_counter()

    def ended(self, token: Any, outcome: str, error: BaseException | None) -> None:
        span, attached, attrs, started = token
        parts = self.parts
        elapsed = time.perf_counter() - started
        span.set_attribute("opero.attempt.outcome", outcome)
        if error is not None:
            _failed(parts, span, error)
        elif outcome != SUCCESS:
            span.set_status(parts.error)
        parts.detach(attached)
        span.end()
        attrs["opero.attempt.outcome"] = outcome
        parts.attempts.add(1, attrs)
        parts.attempt_duration.record(elapsed, attrs)
        if outcome != SUCCESS:
            parts.failures.add(1, attrs)

    def waited(self, details: WaitDetails) -> None:
        state = CALL.get()
        if state is not None:
            state.span.add_event(
                "opero.wait",
                {"opero.wait.reason": details.reason, "opero.wait.seconds": details.seconds},
            )
        attrs = {"opero.function": details.name, "opero.wait.reason": details.reason}
        self.parts.wait_duration.record(details.seconds, attrs)

    def gave_up(self, details: GiveUpDetails) -> None:
        pass  # the call's span records the exception


_OBSERVERS: list[Telemetry] = []


def observer() -> Telemetry:
    """The one observer every traced judge shares."""
    if not _OBSERVERS:
        with _LOCK:
            if not _OBSERVERS:
                _OBSERVERS.append(Telemetry())
    return _OBSERVERS[0]


class Calls:
    """The call spans of one function: ``begin`` one (a child of ``parent``, else of the
    current span), ``end`` it; ``cached``: a call that returns without an attempt was
    answered by the cache (or by an identical call in flight)."""

    __slots__ = ("base", "cached", "name", "parts")

    def __init__(self, name: str, cached: bool) -> None:
        self.parts = _parts()
        self.name, self.base, self.cached = f"opero {name}", {"opero.function": name}, cached

    def begin(self, parent: Any = None) -> tuple[CallState, Any, Any]:
        parts = self.parts
        span = parts.tracer.start_span(self.name, parent, attributes=self.base)
        state = CallState(span, parts.in_context(span, parent))
        return state, CALL.set(state), parts.attach(state.context)

    def end(self, opened: tuple[CallState, Any, Any], error: BaseException | None) -> None:
        state, token, attached = opened
        parts, base = self.parts, self.base
        parts.detach(attached)
        CALL.reset(token)
        span = state.span
        hit = error is None and self.cached and not state.attempted
        span.set_attribute("opero.cache.hit", hit)
        if error is not None:
            _failed(parts, span, error)
        span.end()
        parts.calls.add(1, base)
        if hit:
            parts.hits.add(1, base)

    def hit(self, parent: Any) -> None:
        """A map item answered by its cache lookup."""
        self.end(self.begin(parent), None)


def current() -> Any:
    """The OpenTelemetry context current here (a map's items are its children)."""
    from opentelemetry import context

    return context.get_current()


def traced(wrapper: Callable[..., Any], name: str, is_async: bool, cached: bool) -> Any:
    """``wrapper`` whose every call is a span ``opero <name>`` (the cache lookup included)."""
    calls = Calls(name, cached)
    begin, end = calls.begin, calls.end

    if is_async:

        async def call_async(*args: Any, **kwargs: Any) -> Any:
            opened = begin()
            try:
                result = await wrapper(*args, **kwargs)
            except BaseException as exc:
                end(opened, exc)
                raise
            end(opened, None)
            return result

        return call_async

    def call(*args: Any, **kwargs: Any) -> Any:
        opened = begin()
        try:
            result = wrapper(*args, **kwargs)
        except BaseException as exc:
            end(opened, exc)
            raise
        end(opened, None)
        return result

    return call
