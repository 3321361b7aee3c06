"""OpenTelemetry for every decorated function: :func:`enable` and :func:`disable`.

``@opero(telemetry=True)`` (or ``@operomap(telemetry=True)``) traces one function whatever
is enabled here; :func:`enable` traces every function left at the default
``telemetry=None``, those decorated before it included, until :func:`disable`;
``telemetry=False`` keeps a function out. Both need ``opentelemetry-api`` (the
``opero[otel]`` extra): without it they raise ``ImportError`` naming the extra. What is
recorded (spans, attributes, events and metrics) is described in the README.
"""

from opero.core.telemetry import disable, enable, enabled

__all__ = ["disable", "enable", "enabled"]
