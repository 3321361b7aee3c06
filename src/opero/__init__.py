"""opero: make unreliable function calls dependable.

``@opero`` wraps one sync or async function in cache -> retry -> arg_fallback -> rate
limit; ``@operomap`` runs the same pipeline over many inputs in threads, processes or tasks.
The library logs with loguru and is silent until ``logger.enable("opero")``.

Everything a user writes or receives is importable from here: the decorators, the error
types, ``Limit``, ``Stats`` and ``CacheInfo`` (from ``stats()`` and ``cache_info()``), the
hook payloads and the typing protocols of decorated functions. The subpackages
(``opero.core``, ``opero.cache``, ``opero.maps``, ...) are internal: their names
may change in any release.
"""

from typing import TYPE_CHECKING, Any

from loguru import logger

from opero.core.deadline import deadline
from opero.core.stats import CacheInfo, Stats
from opero.decorators.opero import OperoFunction, opero
from opero.errors import (
    AllFailedError,
    Attempt,
    CircuitOpenError,
    DeadlineExceededError,
    MapStoppedError,
    OperoBackendWarning,
    OperoError,
    OperomapError,
    RejectedResultError,
    RemoteError,
    UnpicklableError,
    WorkerCrashedError,
)
from opero.limit_spec import Limit
from opero.policy import Adaptive, RetryBudget, fallback
from opero.service import Service

__all__ = [
    "Adaptive",
    "AllFailedError",
    "Attempt",
    "AttemptDetails",
    "BreakerDetails",
    "CacheHitDetails",
    "CacheInfo",
    "CircuitOpenError",
    "DeadlineExceededError",
    "FallbackDetails",
    "GiveUpDetails",
    "Limit",
    "MapFunction",
    "MapStoppedError",
    "OperoBackendWarning",
    "OperoError",
    "OperoFunction",
    "OperomapError",
    "RejectedResultError",
    "RemoteError",
    "RetryBudget",
    "RetryDetails",
    "Service",
    "Stats",
    "UnpicklableError",
    "WaitDetails",
    "WorkerCrashedError",
    "deadline",
    "fallback",
    "opero",
    "operomap",
    "telemetry",
]
__version__ = "3.0.0.dev0"

logger.disable("opero")

if TYPE_CHECKING:
    from opero import telemetry
    from opero.core.hooks import (
        AttemptDetails,
        BreakerDetails,
        CacheHitDetails,
        FallbackDetails,
        GiveUpDetails,
        RetryDetails,
        WaitDetails,
    )
    from opero.decorators.operomap import MapFunction, operomap

#: loaded on first use (``import opero`` stays cheap): name -> module
_LAZY = {
    "operomap": "opero.decorators.operomap",
    "MapFunction": "opero.decorators.operomap",
    "RetryDetails": "opero.core.hooks",
    "FallbackDetails": "opero.core.hooks",
    "CacheHitDetails": "opero.core.hooks",
    "AttemptDetails": "opero.core.hooks",
    "WaitDetails": "opero.core.hooks",
    "GiveUpDetails": "opero.core.hooks",
    "BreakerDetails": "opero.core.hooks",
}


def __getattr__(name: str) -> Any:
    # ``operomap`` (and the map machinery behind it) and the hook payloads load on first
    # use, keeping ``import opero`` cheap for programs that only use ``@opero``.
    if name == "telemetry":  # OpenTelemetry support (the API itself loads on first use)
        import importlib

        return importlib.import_module("opero.telemetry")
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'opero' has no attribute {name!r}")
