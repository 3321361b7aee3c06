"""What a worker process has finished, kept where its death cannot take it.

A process worker runs a batch of attempts and answers once, at the end. If it dies halfway
(a segfault, ``os._exit``, the OOM killer), the attempts it had finished must not run again
and the one it was running must count as an attempt. So, as each attempt of a batch
of several ends, the worker appends its outcome to a buffer shared with the caller (a
``multiprocessing`` shared array: no system call, a few hundred nanoseconds) and then bumps
the record count. When the caller sees the worker die, it reads the finished outcomes from
the buffer and knows which attempt was running. An outcome too large for the buffer is sent
at once over the pipe as a :class:`Part` (with the outcomes before it), and the buffer
starts over.

This module is the caller's side; :mod:`opero.maps.spill_writer` the worker's;
:mod:`opero.maps.spill_layout` the buffer's layout.
"""

from __future__ import annotations

import marshal
import pickle
import struct
from typing import NamedTuple

from opero.maps.records import Outcome, Results
from opero.maps.spill_layout import (
    FLOAT,
    HEADER,
    INT64,
    LOADING,
    MARSHALLED,
    NONE,
    PAUSE_AT,
    PICKLED,
    RECORD,
    RECORDS_AT,
    SIZE,
    Part,
    SharedBuffer,
)
from opero.maps.spill_writer import SpillWriter, run_spilled

__all__ = [
    "SIZE",
    "Finished",
    "Part",
    "SharedBuffer",
    "SpillWriter",
    "began",
    "finished_outcomes",
    "joined",
    "loading",
    "read_spill",
    "run_spilled",
    "set_pause",
]


class Finished(NamedTuple):
    """What a worker had finished of its running batch: outcomes by position, and whether
    all its attempts had started (an async batch)."""

    outcomes: dict[int, Outcome]
    all_started: bool


def began(raw: SharedBuffer) -> int:
    """The number of the last batch the worker began (0: none yet, or the buffer is gone)."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            number: int = HEADER.unpack_from(view, 0)[0]
            return number
    except ValueError:
        return 0


def loading(raw: SharedBuffer, batch: int) -> bool:
    """Whether the worker was still unpickling its batch number ``batch``."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            number, _, state = HEADER.unpack_from(view, 0)
            return bool(number == batch and state == LOADING)
    except ValueError:
        return False


def set_pause(raw: SharedBuffer, until: float) -> None:
    """The caller's side: no attempt of this worker starts before ``until`` (time.time())."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            struct.pack_into("<d", view, PAUSE_AT, until)
    except ValueError:  # the buffer is closed: the worker is gone
        pass


def read_spill(raw: SharedBuffer, batch: int) -> Finished | None:
    """The outcomes recorded for ``batch`` (by position) and whether all its attempts had
    started; None if the worker never began that batch."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            return _read(view, batch)
    except ValueError:  # the buffer is already closed: the worker is long gone
        return None


def _read(view: memoryview, batch: int) -> Finished | None:
    number, count, state = HEADER.unpack_from(view, 0)
    if number != batch:
        return None
    out: dict[int, Outcome] = {}
    at = RECORDS_AT
    for _ in range(count):
        length, position, kind = RECORD.unpack_from(view, at)
        payload = bytes(view[at + RECORD.size : at + RECORD.size + length])
        at += RECORD.size + length
        try:
            out[position] = _decoded(kind, payload)
        except Exception as exc:  # it finished, but cannot be read back here
            out[position] = Outcome(False, exc)
    return Finished(out, state == 1)


def _decoded(kind: int, payload: bytes) -> Outcome:
    """The outcome a record holds."""
    if kind == INT64:
        return Outcome(True, int.from_bytes(payload, "little", signed=True))
    if kind == NONE:
        return Outcome(True, None)
    if kind == FLOAT:
        return Outcome(True, struct.unpack("<d", payload)[0])
    if kind == MARSHALLED:
        return Outcome(True, marshal.loads(payload))
    if kind == PICKLED:
        return Outcome(True, pickle.loads(payload))
    exc, tb = pickle.loads(payload)
    return Outcome(False, exc, tb)


def joined(parts: list[Part], last: Results) -> Results:
    """A batch's answer from the outcomes sent ahead and the final answer."""
    values: list[object] = []
    failures: dict[int, tuple[BaseException, str | None]] = {}
    for part in parts:
        values.extend(part.values)
        failures.update(part.failures)
    base = len(values)
    values.extend(last[0])
    failures.update({base + k: f for k, f in last[1].items()})
    return values, failures


def finished_outcomes(parts: list[Part], spilled: Finished | None) -> Finished | None:
    """Every outcome of the running batch that reached the caller: parts and the buffer."""
    if spilled is None:
        return None
    finished: dict[int, Outcome] = {}
    for part in parts:
        for n, value in enumerate(part.values, start=part.start):
            finished[n] = Outcome(True, value)
        for n, (exc, tb) in part.failures.items():
            finished[n] = Outcome(False, exc, tb)
    finished.update(spilled.outcomes)
    return Finished(finished, spilled.all_started)
