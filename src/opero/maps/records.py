"""The records that pass between a map's caller and its workers: an attempt's arguments,
a batch of attempts (segments of rows sharing keyword arguments), its answer, and how one
attempt ended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "Args",
    "Failures",
    "Function",
    "Kwargs",
    "Outcome",
    "Results",
    "Rows",
    "Segment",
]

#: the user's function: a callable of its own signature, sync or async (then awaited)
Function = Callable[..., Any]
#: an attempt's positional and keyword arguments (the user's values: opaque here)
Args = tuple[object, ...]
Kwargs = dict[str, object]
#: the attempts of a job: their argument tuples, or (``bare``) the one argument of each
Rows = list[Any]
#: attempts sharing one kwargs: (rows, kwargs, bare); a row is the positional arguments of
#: an attempt, or with ``bare`` the one positional argument itself (no tuple to build)
Segment = tuple[Rows, Kwargs, bool]
#: the failures of a batch: its position -> (exception, the worker's traceback as text)
Failures = dict[int, tuple[BaseException, str | None]]
#: the answer to a batch: one value per attempt (None where it failed), and its failures
Results = tuple[list[object], Failures]


class Outcome(NamedTuple):
    """How one attempt ended: ``ok`` with its value, or not with its exception (then
    ``tb``: its traceback as text, when it ran in a worker)."""

    ok: bool
    value: object  # the exception when not ok
    tb: str | None = None

    @property
    def error(self) -> BaseException:
        """The exception of a failed attempt."""
        assert isinstance(self.value, BaseException)
        return self.value

    def result(self) -> object:
        """The value, or raise the exception."""
        if self.ok:
            return self.value
        raise self.error
