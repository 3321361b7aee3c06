"""The progress bar of a map: tqdm on stderr when stderr is a terminal, nothing otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opero.core.stats import Counters, Stats

__all__ = ["Progress"]


class Progress:
    """A tqdm bar on stderr when stderr is a terminal; nothing otherwise. It advances as
    items end (also while ordered results wait for an earlier one) and shows, beside the
    count, this map's cache hits, retried rounds and items failed (at most ten times a
    second)."""

    def __init__(
        self, enabled: bool, items: Iterable[Any], name: str, counters: Counters | None = None
    ) -> None:
        self.bar: Any = None
        self.counters = counters
        self.base: Stats | None = None
        self.shown = 0.0
        self.failed = 0  #: items that ended with an exception
        self.catch_up: asyncio.TimerHandle | None = None  #: a redraw of a stale count
        if not enabled:
            return
        try:
            interactive = sys.stderr.isatty()
        except (AttributeError, ValueError):
            interactive = False
        if not interactive:
            return
        try:
            from tqdm import tqdm  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        self.bar = tqdm(total=total, desc=name, file=sys.stderr, leave=True, dynamic_ncols=True)
        if counters is not None:
            self.base = counters.snapshot()

    @property
    def tally(self) -> Callable[[bool], None] | None:
        """What the map tells of each item as it ends (None: no bar to advance)."""
        return self.ended if self.bar is not None else None

    def ended(self, ok: bool) -> None:
        """An item ended (``ok``: with a result)."""
        if not ok:
            self.failed += 1
        now = time.monotonic()
        if now - self.shown >= 0.1:
            self.shown = now
            self._postfix()
        self.bar.update(1)
        if self.catch_up is None and self.bar.n != self.bar.last_print_n:
            try:  # tqdm skipped this redraw: show the count if nothing ends for 0.1 s
                self.catch_up = asyncio.get_running_loop().call_later(0.1, self._redraw)
            except RuntimeError:
                pass

    def _redraw(self) -> None:
        self.catch_up = None
        if self.bar is not None and self.bar.n != self.bar.last_print_n:
            self.bar.refresh()
            self.bar.last_print_n = self.bar.n

    def _postfix(self) -> None:
        if self.counters is None or self.base is None:
            return
        now, base = self.counters.snapshot(), self.base
        self.bar.set_postfix(
            hits=now.cache_hits - base.cache_hits,
            retries=now.retries - base.retries,
            failed=self.failed,
            refresh=False,
        )

    def close(self) -> None:
        if self.catch_up is not None:
            self.catch_up.cancel()
            self.catch_up = None
        if self.bar is not None:
            self._postfix()
            self.bar.close()
