"""The worker's side of the spill buffer (:mod:`opero.maps.spill`): each outcome of a batch
recorded as it ends, one batch at a time."""

from __future__ import annotations

import marshal
import pickle
import struct
import time
import traceback
from collections.abc import Callable
from typing import Any

from opero.maps.attempts import portable_results
from opero.maps.crossing import portable_failure
from opero.maps.records import Failures, Function, Kwargs, Results, Rows, Segment
from opero.maps.spill_layout import (
    COUNT,
    COUNT_AT,
    FAILED,
    FLOAT,
    FLOAT_RECORD,
    HEADER,
    INT64,
    INT_RECORD,
    LOADING,
    MARSHALLED,
    NONE,
    PAUSE_AT,
    PICKLED,
    RECORD,
    RECORDS_AT,
    SMALL_SIZE,
    STATE,
    STATE_AT,
    Part,
    SharedBuffer,
)

__all__ = ["SpillWriter", "run_spilled"]

_pack_int, _pack_float, _pack_count = INT_RECORD.pack_into, FLOAT_RECORD.pack_into, COUNT.pack_into
_pack_record, _HEAD = RECORD.pack_into, RECORD.size


class SpillWriter:
    """The worker's side: one batch at a time."""

    __slots__ = ("batch", "count", "pause", "size", "used", "view")

    def __init__(self, raw: SharedBuffer) -> None:
        self.view = memoryview(raw).cast("B")
        self.size = len(self.view)
        #: the shared pause (a server asked every caller to wait), as last written (0.0: none)
        self.pause = self.view[PAUSE_AT:RECORDS_AT].cast("d")
        self.batch = 0
        self.count = 0
        self.used = RECORDS_AT

    def begin(self, *, all_started: bool = False, loading: bool = False) -> None:
        """A new batch (``all_started``: its attempts run concurrently, all at once;
        ``loading``: it is still being unpickled, see :meth:`loaded`)."""
        self.batch += 1
        self.count = 0
        self.used = RECORDS_AT
        state = LOADING if loading else 1 if all_started else 0
        HEADER.pack_into(self.view, 0, self.batch, 0, state)

    def loaded(self, *, all_started: bool = False) -> None:
        """The batch begun with ``loading=True`` is unpickled: its attempts start now."""
        STATE.pack_into(self.view, STATE_AT, 1 if all_started else 0)

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
        self.used = RECORDS_AT
        COUNT.pack_into(self.view, COUNT_AT, 0)

    def add(self, position: int, ok: bool, value: Any, tb: str | None = None) -> bool:
        """Record one outcome; False if it does not fit (send a :class:`Part` instead)."""
        payload: bytes | None
        if ok:
            try:
                kind, payload = MARSHALLED, marshal.dumps(value)
            except ValueError:
                kind, payload = PICKLED, _pickled(value)
        else:
            kind, payload = FAILED, _pickled_failure(value, tb)
        if payload is None:
            return False  # the answer will say why it cannot cross
        start, view, size = self.used, self.view, len(payload)
        end = start + _HEAD + size
        if end > self.size:
            return False
        _pack_record(view, start, size, position, kind)
        view[start + _HEAD : end] = payload
        self.used = end
        count = self.count = self.count + 1
        _pack_count(view, COUNT_AT, count)  # last: a record counts once written
        return True

    def kept(self, position: int, value: Any) -> bool:
        """Record a value an attempt returned: a small number in one ``pack_into``, a
        marshalled value inline (the common cases: ~0.2 us), anything else through
        :meth:`add`."""
        used, view, kind = self.used, self.view, type(value)
        end = used + SMALL_SIZE
        try:
            if kind is int:
                _pack_int(view, used, 8, position, INT64, value)
            elif kind is float:
                _pack_float(view, used, 8, position, FLOAT, value)
            elif value is None:
                _pack_int(view, used, 8, position, NONE, 0)
            else:
                payload = marshal.dumps(value)
                size = len(payload)
                end = used + _HEAD + size
                _pack_record(view, used, size, position, MARSHALLED)
                view[used + _HEAD : end] = payload  # (a ValueError past the buffer's end)
        except (struct.error, ValueError):  # beyond int64, no room, or not marshallable
            return self.add(position, True, value)
        self.used = end
        count = self.count = self.count + 1
        _pack_count(view, COUNT_AT, count)  # last: now it counts
        return True

    def run(self, fn: Function, segments: list[Segment], send: Callable[[Part], None]) -> Results:
        """``run_segments`` for a sync function, recording each outcome as it ends. The
        answer covers the positions after the last :class:`Part` sent (failures relative)."""
        answer = _Answer(getattr(fn, "__qualname__", None) or repr(fn), send)
        for rows, kwargs, bare in segments:
            self._rows(fn, rows, kwargs, bare, answer)
        return answer.values, answer.failures

    def _rows(
        self,
        fn: Function,
        rows: Rows,
        kwargs: Kwargs,
        bare: bool,
        answer: _Answer,
    ) -> None:
        """The attempts of one segment (``bare``: each row is the one argument)."""
        pause, kept = self.pause, self.kept
        append = answer.values.append
        position = answer.next
        for row in rows:
            if pause[0] > 0.0:
                self.wait_pause()
            try:
                value = fn(row, **kwargs) if bare else fn(*row, **kwargs)
            except BaseException as exc:  # sent back; the caller re-raises a BaseException
                tb = traceback.format_exc()
                answer.failed(position, exc, tb)
                fits = self.add(position, False, exc, tb)
            else:
                append(value)
                fits = kept(position, value)
            position += 1
            if not fits:  # sent ahead over the pipe instead: the buffer starts over
                answer.send_ahead(position)
                append = answer.values.append
                self.restart()


def _pickled(value: object) -> bytes | None:
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


def _pickled_failure(exc: BaseException, tb: str | None) -> bytes | None:
    try:
        return pickle.dumps(portable_failure(exc, tb), pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None


class _Answer:
    """A batch's answer as it is built: the outcomes since the last :class:`Part` sent."""

    __slots__ = ("base", "failures", "name", "send", "values")

    def __init__(self, name: str, send: Callable[[Part], None]) -> None:
        self.name = name
        self.send = send
        self.base = 0  # the position of values[0]
        self.values: list[object] = []
        self.failures: Failures = {}

    @property
    def next(self) -> int:
        """The position of the next attempt."""
        return self.base + len(self.values)

    def failed(self, position: int, exc: BaseException, tb: str) -> None:
        self.failures[position - self.base] = (exc, tb)
        self.values.append(None)

    def send_ahead(self, position: int) -> None:
        """Send the outcomes so far as a :class:`Part`; the answer goes on from
        ``position``."""
        done, failed = portable_results((self.values, self.failures), self.name)
        base = self.base
        self.send(Part(base, done, {base + k: f for k, f in failed.items()}))
        self.base, self.values, self.failures = position, [], {}


def run_spilled(
    fn: Function,
    segments: list[Segment],
    spill: SpillWriter,
    send: Callable[[Part], None],
) -> Results:
    """``run_segments`` for a sync function, recording each outcome in ``spill`` as it ends
    (see :meth:`SpillWriter.run`)."""
    return spill.run(fn, segments, send)
