"""Cache misses of a map fed in bulk: gathered in one feeding round as parallel lists, and
sent to the transport as jobs (:mod:`opero.maps.bulk`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opero.cache.singleflight import Flight
    from opero.maps.bulk import BulkFeed
    from opero.maps.records import Args, Failures

__all__ = ["MissJob", "Misses", "all_missed"]


class Misses:
    """Cache misses gathered in one feeding round, as parallel lists."""

    __slots__ = ("indices", "keys", "rows")

    def __init__(
        self,
        indices: list[int] | None = None,
        keys: list[Hashable | None] | None = None,
        rows: list[Args] | None = None,
    ) -> None:
        self.indices: list[int] = [] if indices is None else indices
        self.keys: list[Hashable | None] = [] if keys is None else keys
        self.rows: list[Args] = [] if rows is None else rows

    def add(self, index: int, key: Hashable | None, row: Args) -> None:
        self.indices.append(index)
        self.keys.append(key)
        self.rows.append(row)

    def extend(self, index: int, rows: list[Args]) -> None:
        """Rows numbered from ``index``, each its own memory key."""
        self.indices.extend(range(index, index + len(rows)))
        self.keys.extend(rows)
        self.rows.extend(rows)

    def part(self, start: int, end: int) -> Misses:
        return Misses(self.indices[start:end], self.keys[start:end], self.rows[start:end])

    def only(self, keep: list[int]) -> Misses:
        """The misses at the positions ``keep``."""
        return Misses(
            [self.indices[n] for n in keep],
            [self.keys[n] for n in keep],
            [self.rows[n] for n in keep],
        )

    def __bool__(self) -> bool:
        return bool(self.indices)


class MissJob:
    """First attempts of some missed items, sent to the transport as one job."""

    __slots__ = ("feed", "flights", "misses")

    def __init__(self, feed: BulkFeed, misses: Misses, flights: list[Flight | None]) -> None:
        self.feed = feed
        self.misses = misses
        self.flights = flights

    def done(self, values: list[object], failures: Failures) -> None:
        self.feed.job_done(self, values, failures)


def all_missed(rows: list[Args], lookup: Callable[[Hashable], object]) -> bool:
    """Whether no row is a key of the store (False also when a row is unhashable: the
    per-row path then finds out which)."""
    try:
        entries = list(map(lookup, rows))
    except Exception:  # an unhashable row
        return False
    return entries.count(None) == len(rows)
