"""The memory store: a bounded LRU mapping with a TTL, per decorated function."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable
from itertools import repeat
from typing import Any

from opero.cache.store import MISS
from opero.core.clock import CLOCK

__all__ = ["MemoryStore"]


class MemoryStore:
    """A bounded LRU mapping with a TTL, per decorated function.

    Reads are lock-free (single C-level dict operations); writes and evictions take a lock.
    ``data`` maps key -> ``(expires_at, value)`` on the :data:`CLOCK` monotonic clock.
    """

    backend = "memory"

    def __init__(self, maxsize: int, ttl: float | None) -> None:
        self.data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.maxsize = maxsize
        self.ttl = ttl
        self.timer = CLOCK.monotonic
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        entry = self.data.get(key)
        if entry is None:
            return MISS
        if entry[0] <= self.timer():
            with self._lock:  # drop it unless another thread stored a fresh entry meanwhile
                if self.data.get(key) is entry:
                    del self.data[key]
            return MISS
        try:
            self.data.move_to_end(key)
        except KeyError:
            pass
        return entry[1]

    def set(self, key: Hashable, value: object) -> None:
        expires = float("inf") if self.ttl is None else self.timer() + self.ttl
        with self._lock:
            self.data[key] = (expires, value)
            self.data.move_to_end(key)
            while len(self.data) > self.maxsize:
                self.data.popitem(last=False)

    def set_many(self, keys: list[Hashable], values: list[object]) -> None:
        """Store many fresh values at once (one lock, C-level loops: a map's misses). A key
        already present keeps its place in the LRU order (misses rarely are)."""
        expires = float("inf") if self.ttl is None else self.timer() + self.ttl
        data = self.data
        with self._lock:
            data.update(zip(keys, zip(repeat(expires), values, strict=False), strict=True))
            excess = len(data) - self.maxsize
            if excess > 0:
                deque(map(data.popitem, repeat(False, excess)), maxlen=0)

    def contains(self, key: Hashable) -> bool:
        """Whether ``key`` has a fresh entry (the LRU order is left as it is)."""
        entry = self.data.get(key)
        return entry is not None and entry[0] > self.timer()

    def delete(self, key: Hashable) -> bool:
        """Remove ``key``'s entry; whether a fresh one was there."""
        with self._lock:
            entry = self.data.pop(key, None)
        return entry is not None and entry[0] > self.timer()

    def discard(self, keys: Iterable[Hashable]) -> None:
        with self._lock:
            for key in keys:
                self.data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.data.clear()
