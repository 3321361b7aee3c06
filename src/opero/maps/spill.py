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

Layout: a header ``(batch number, records, state)`` of three int64 (state 0: attempts run in
order, 1: all started at once, 2: the batch is still being unpickled), then records
``(length: uint32, position: uint32, kind: uint8, payload)``; ``kind`` 0 is a marshalled
value, 1 a pickled value, 2 a pickled ``(exception, traceback)``, 3 an int64, 4 None, 5 a
float (the last three written with one ``pack_into``).
"""

from __future__ import annotations

import marshal
import pickle
import struct
import time
import traceback
from collections.abc import Callable
from typing import Any

from opero.maps.attempts import Results, Segment, portable_results
from opero.maps.crossing import portable_failure

__all__ = [
    "SIZE",
    "Part",
    "SpillWriter",
    "began",
    "finished_outcomes",
    "joined",
    "loading",
    "read_spill",
    "run_spilled",
    "set_pause",
]

SIZE = 1 << 20  #: bytes of buffer per worker
_HEADER = struct.Struct("<qqq")
_COUNT = struct.Struct("<q")
_RECORD = struct.Struct("<IIB")
_INT_RECORD = struct.Struct("<IIBq")  # a record holding an int64 (kind 3) or None (kind 4)
_FLOAT_RECORD = struct.Struct("<IIBd")  # a record holding a float (kind 5)
_I64 = 1 << 63
_COUNT_AT = 8
_STATE = struct.Struct("<q")
_STATE_AT = 16  #: 0: attempts run in order, 1: all started at once, 2: still loading
_LOADING = 2
_PAUSE_AT = 24  #: a float64 the caller writes: no attempt starts before this time.time()
_RECORDS_AT = 32

Outcome = tuple[bool, Any, str | None]


class Part:
    """Outcomes sent ahead of a batch's answer: ``values`` from position ``start``, and
    ``failures`` by absolute position."""

    __slots__ = ("failures", "start", "values")

    def __init__(
        self, start: int, values: list[Any], failures: dict[int, tuple[BaseException, Any]]
    ) -> None:
        self.start = start
        self.values = values
        self.failures = failures

    def __reduce__(self) -> tuple[object, ...]:
        return (Part, (self.start, self.values, self.failures))


class SpillWriter:
    """The worker's side: one batch at a time."""

    def __init__(self, raw: Any) -> None:
        self.view = memoryview(raw).cast("B")
        #: the shared pause (a server asked every caller to wait), as last written (0.0: none)
        self.pause = self.view[_PAUSE_AT:_RECORDS_AT].cast("d")
        self.batch = 0
        self.count = 0
        self.used = _RECORDS_AT

    def begin(self, *, all_started: bool = False, loading: bool = False) -> None:
        """A new batch (``all_started``: its attempts run concurrently, all at once;
        ``loading``: it is still being unpickled, see :meth:`loaded`)."""
        self.batch += 1
        self.count = 0
        self.used = _RECORDS_AT
        state = _LOADING if loading else 1 if all_started else 0
        _HEADER.pack_into(self.view, 0, self.batch, 0, state)

    def loaded(self, *, all_started: bool = False) -> None:
        """The batch begun with ``loading=True`` is unpickled: its attempts start now."""
        _STATE.pack_into(self.view, _STATE_AT, 1 if all_started else 0)

    def wait_pause(self) -> None:
        """Sleep while the caller's shared pause runs (a server asked every caller to wait)."""
        while True:
            wait = self.pause[0] - time.time()
            if wait <= 0:
                return
            time.sleep(wait)

    def restart(self) -> None:
        """The outcomes so far went over the pipe: the buffer starts over."""
        self.count = 0
        self.used = _RECORDS_AT
        _COUNT.pack_into(self.view, _COUNT_AT, 0)

    def add(self, position: int, ok: bool, value: Any, tb: str | None = None) -> bool:
        """Record one outcome; False if it does not fit (send a :class:`Part` instead)."""
        if ok:
            try:
                kind, payload = 0, marshal.dumps(value)
            except ValueError:
                try:
                    kind, payload = 1, pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
                except Exception:
                    return False  # the answer will say why it cannot cross
        else:
            try:
                kind = 2
                payload = pickle.dumps(portable_failure(value, tb), pickle.HIGHEST_PROTOCOL)
            except Exception:
                return False
        start = self.used
        end = start + _RECORD.size + len(payload)
        if end > len(self.view):
            return False
        view = self.view
        _RECORD.pack_into(view, start, len(payload), position, kind)
        view[start + _RECORD.size : end] = payload
        self.used = end
        self.count += 1
        _COUNT.pack_into(view, _COUNT_AT, self.count)  # last: a record counts once written
        return True


def began(raw: Any) -> int:
    """The number of the last batch the worker began (0: none yet, or the buffer is gone)."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            number: int = _HEADER.unpack_from(view, 0)[0]
            return number
    except ValueError:
        return 0


def loading(raw: Any, batch: int) -> bool:
    """Whether the worker was still unpickling its batch number ``batch``."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            number, _, state = _HEADER.unpack_from(view, 0)
            return bool(number == batch and state == _LOADING)
    except ValueError:
        return False


def set_pause(raw: Any, until: float) -> None:
    """The caller's side: no attempt of this worker starts before ``until`` (time.time())."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            struct.pack_into("<d", view, _PAUSE_AT, until)
    except ValueError:  # the buffer is closed: the worker is gone
        pass


def read_spill(raw: Any, batch: int) -> tuple[dict[int, Outcome], bool] | None:
    """The outcomes recorded for ``batch`` (by position) and whether all its attempts had
    started; None if the worker never began that batch."""
    try:
        with memoryview(raw) as whole, whole.cast("B") as view:
            return _read(view, batch)
    except ValueError:  # the buffer is already closed: the worker is long gone
        return None


def _read(view: memoryview, batch: int) -> tuple[dict[int, Outcome], bool] | None:
    number, count, state = _HEADER.unpack_from(view, 0)
    if number != batch:
        return None
    out: dict[int, Outcome] = {}
    at = _RECORDS_AT
    for _ in range(count):
        length, position, kind = _RECORD.unpack_from(view, at)
        payload = bytes(view[at + _RECORD.size : at + _RECORD.size + length])
        at += _RECORD.size + length
        try:
            if kind == 3:
                out[position] = (True, int.from_bytes(payload, "little", signed=True), None)
            elif kind == 4:
                out[position] = (True, None, None)
            elif kind == 5:
                out[position] = (True, struct.unpack("<d", payload)[0], None)
            elif kind == 0:
                out[position] = (True, marshal.loads(payload), None)
            elif kind == 1:
                out[position] = (True, pickle.loads(payload), None)
            else:
                exc, tb = pickle.loads(payload)
                out[position] = (False, exc, tb)
        except Exception as exc:  # it finished, but cannot be read back here
            out[position] = (False, exc, None)
    return out, state == 1


def fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def run_spilled(
    fn: Callable[..., Any],
    segments: list[Segment],
    spill: SpillWriter,
    send: Callable[[Part], None],
) -> Results:
    """``run_segments`` for a sync function, recording each outcome in ``spill`` as it ends.
    The answer covers the positions after the last :class:`Part` sent (failures relative).
    A marshalled value is written inline (the common case: ~0.2 us); anything else goes
    through :meth:`SpillWriter.add`."""
    values: list[Any] = []
    append = values.append
    failures: dict[int, tuple[BaseException, str | None]] = {}
    base = position = 0
    view, limit = spill.view, len(spill.view)
    dumps, pack_record, pack_count = marshal.dumps, _RECORD.pack_into, _COUNT.pack_into
    head = _RECORD.size
    pack_int, pack_float = _INT_RECORD.pack_into, _FLOAT_RECORD.pack_into
    used, count = spill.used, spill.count
    pause = spill.pause
    for rows, kwargs, bare in segments:
        for row in rows:
            if pause[0] > 0.0:
                spill.wait_pause()
            try:
                value = fn(row, **kwargs) if bare else fn(*row, **kwargs)
            except BaseException as exc:  # sent back; the caller re-raises a BaseException
                tb = traceback.format_exc()
                failures[position - base] = (exc, tb)
                append(None)
                spill.used, spill.count = used, count
                kept = spill.add(position, False, exc, tb)
                used, count = spill.used, spill.count
            else:
                append(value)
                kind = type(value)
                if (kind is int and -_I64 <= value < _I64) or kind is float or value is None:
                    end = used + head + 8
                    kept = end <= limit
                    if kept:
                        if kind is int:
                            pack_int(view, used, 8, position, 3, value)
                        elif kind is float:
                            pack_float(view, used, 8, position, 5, value)
                        else:
                            pack_int(view, used, 8, position, 4, 0)
                        used = end
                        count += 1
                        pack_count(view, _COUNT_AT, count)  # last: now it counts
                    position += 1
                    if kept:
                        continue
                    position -= 1  # does not fit: the general path below sends it ahead
                try:
                    payload = dumps(value)
                except ValueError:
                    spill.used, spill.count = used, count
                    kept = spill.add(position, True, value)
                    used, count = spill.used, spill.count
                else:
                    size = len(payload)
                    end = used + head + size
                    kept = end <= limit
                    if kept:
                        pack_record(view, used, size, position, 0)
                        view[used + head : end] = payload
                        used = end
                        count += 1
                        pack_count(view, _COUNT_AT, count)  # last: now it counts
            position += 1
            if not kept:
                done, failed = portable_results((values, failures), fn_name(fn))
                send(Part(base, done, {base + k: f for k, f in failed.items()}))
                base, values, failures = position, [], {}
                append = values.append
                spill.restart()
                used, count = spill.used, spill.count
    spill.used, spill.count = used, count
    return values, failures


def joined(parts: list[Part], last: Results) -> Results:
    """A batch's answer from the outcomes sent ahead and the final answer."""
    values: list[Any] = []
    failures: dict[int, tuple[BaseException, str | None]] = {}
    for part in parts:
        values.extend(part.values)
        failures.update(part.failures)
    base = len(values)
    values.extend(last[0])
    failures.update({base + k: f for k, f in last[1].items()})
    return values, failures


def finished_outcomes(
    parts: list[Part], spilled: tuple[dict[int, Outcome], bool] | None
) -> tuple[dict[int, Outcome], bool] | None:
    """Every outcome of the running batch that reached the caller: parts and the buffer."""
    if spilled is None:
        return None
    finished: dict[int, Outcome] = {}
    for part in parts:
        for n, value in enumerate(part.values, start=part.start):
            finished[n] = (True, value, None)
        for n, (exc, tb) in part.failures.items():
            finished[n] = (False, exc, tb)
    finished.update(spilled[0])
    return finished, spilled[1]
