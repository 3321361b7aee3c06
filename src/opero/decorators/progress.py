"""The progress bar of a map: tqdm on stderr when stderr is a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A tqdm bar on stderr when stderr is a terminal; nothing otherwise."""

    def __init__(self, enabled: bool, items: Iterable[Any], name: str) -> None:
        self.bar: Any = None
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

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
