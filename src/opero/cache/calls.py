"""What the cache layer is given to compute a value: a call's arguments and the function
that runs the call's attempts. Arguments and results are the user's: truly arbitrary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

__all__ = ["Args", "Kwargs", "Run", "RunAsync"]

Args: TypeAlias = tuple[Any, ...]  #: a call's positional arguments
Kwargs: TypeAlias = dict[str, Any]  #: a call's keyword arguments
Run: TypeAlias = Callable[[Args, Kwargs], Any]  #: runs a call (its attempts), returns its value
RunAsync: TypeAlias = Callable[[Args, Kwargs], Awaitable[Any]]  #: :data:`Run`, awaited
