"""The layout of the buffer a process worker shares with its caller (see
:mod:`opero.maps.spill`), and :class:`Part`, the outcomes sent ahead over the pipe.

A header ``(batch number, records, state)`` of three int64 (state 0: attempts run in order,
1: all started at once, 2: the batch is still being unpickled), a float64 pause, then
records ``(length: uint32, position: uint32, kind: uint8, payload)``; ``kind`` 0 is a
marshalled value, 1 a pickled value, 2 a pickled ``(exception, traceback)``, 3 an int64,
4 None, 5 a float (the last three written with one ``pack_into``).
"""

from __future__ import annotations

import ctypes
import mmap
import struct

__all__ = ["SIZE", "Part", "SharedBuffer"]

#: the shared memory of one worker: anonymous under fork, a ``RawArray`` otherwise
SharedBuffer = mmap.mmap | ctypes.Array[ctypes.c_ubyte]

SIZE = 1 << 20  #: bytes of buffer per worker
HEADER = struct.Struct("<qqq")
COUNT = struct.Struct("<q")
RECORD = struct.Struct("<IIB")
INT_RECORD = struct.Struct("<IIBq")  # a record holding an int64 (kind 3) or None (kind 4)
FLOAT_RECORD = struct.Struct("<IIBd")  # a record holding a float (kind 5)
SMALL_SIZE = INT_RECORD.size  # the size of a record of kind 3, 4 or 5
COUNT_AT = 8
STATE = struct.Struct("<q")
STATE_AT = 16  #: 0: attempts run in order, 1: all started at once, 2: still loading
LOADING = 2
PAUSE_AT = 24  #: a float64 the caller writes: no attempt starts before this time.time()
RECORDS_AT = 32
MARSHALLED, PICKLED, FAILED, INT64, NONE, FLOAT = range(6)  #: the kinds of record


class Part:
    """Outcomes sent ahead of a batch's answer: ``values`` from position ``start``, and
    ``failures`` by absolute position."""

    __slots__ = ("failures", "start", "values")

    def __init__(
        self,
        start: int,
        values: list[object],
        failures: dict[int, tuple[BaseException, str | None]],
    ) -> None:
        self.start = start
        self.values = values
        self.failures = failures

    def __reduce__(self) -> tuple[object, ...]:
        return (Part, (self.start, self.values, self.failures))
