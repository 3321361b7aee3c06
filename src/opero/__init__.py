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

from opero.core.hooks import CacheHitDetails, FallbackDetails, RetryDetails
from opero.core.stats import CacheInfo, Stats
from opero.decorators.opero import OperoFunction, opero
from opero.errors import (
    AllFailedError,
    Attempt,
    CircuitOpenError,
    OperoBackendWarning,
    OperoError,
    OperomapError,
    RemoteError,
    UnpicklableError,
    WorkerCrashedError,
)
from opero.rates import Limit

__all__ = [
    "AllFailedError",
    "Attempt",
    "CacheHitDetails",
    "CacheInfo",
    "CircuitOpenError",
    "FallbackDetails",
    "Limit",
    "MapFunction",
    "OperoBackendWarning",
    "OperoError",
    "OperoFunction",
    "OperomapError",
    "RemoteError",
    "RetryDetails",
    "Stats",
    "UnpicklableError",
    "WorkerCrashedError",
    "opero",
    "operomap",
]
__version__ = "3.0.0.dev0"

logger.disable("opero")

if TYPE_CHECKING:
    from opero.decorators.operomap import MapFunction, operomap


def __getattr__(name: str) -> Any:
    # ``operomap`` (and the map machinery behind it) loads on first use, keeping
    # ``import opero`` cheap for programs that only use ``@opero``.
    if name in ("operomap", "MapFunction"):
        from opero.decorators import operomap as module

        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'opero' has no attribute {name!r}")
