"""opero: make unreliable function calls dependable.

``@opero`` wraps one sync or async function in cache -> retry -> arg_fallback -> rate
limit; ``@operomap`` runs the same pipeline over many inputs in threads, processes or tasks.
The library logs with loguru and is silent until ``logger.enable("opero")``.
"""

from typing import TYPE_CHECKING, Any

from loguru import logger

from opero.decorators.opero import OperoFunction, opero
from opero.errors import (
    AllFailedError,
    CircuitOpenError,
    OperoBackendWarning,
    OperoError,
    OperomapError,
    RemoteError,
    WorkerCrashedError,
)
from opero.rates import Limit

__all__ = [
    "AllFailedError",
    "CircuitOpenError",
    "Limit",
    "OperoBackendWarning",
    "OperoError",
    "OperoFunction",
    "OperomapError",
    "RemoteError",
    "WorkerCrashedError",
    "opero",
    "operomap",
]
__version__ = "3.0.0.dev0"

logger.disable("opero")

if TYPE_CHECKING:
    from opero.decorators.operomap import operomap


def __getattr__(name: str) -> Any:
    # ``operomap`` (and the map machinery behind it) loads on first use, keeping
    # ``import opero`` cheap for programs that only use ``@opero``.
    if name == "operomap":
        from opero.decorators.operomap import operomap

        globals()["operomap"] = operomap
        return operomap
    raise AttributeError(f"module 'opero' has no attribute {name!r}")
