"""opero: make unreliable function calls dependable.

``@opero`` wraps one sync or async function in cache -> retry -> arg_fallback -> rate
limit; ``@operomap`` runs the same pipeline over many inputs in threads, processes or tasks.
The library logs with loguru and is silent until ``logger.enable("opero")``.
"""

from loguru import logger

from opero.decorators.opero import OperoFunction, opero
from opero.decorators.operomap import operomap
from opero.errors import (
    AllFailedError,
    OperoBackendWarning,
    OperoError,
    OperomapError,
    RemoteError,
    WorkerCrashedError,
)

__all__ = [
    "AllFailedError",
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
