"""Recorded OpenTelemetry spans as an indented text tree (the ``--trace`` tour of
``python -m opero`` prints it): each span with its attributes (``opero.`` left out), its
waits below it, then its children; calls alike are shown once with a count, attempts alike
only when they follow each other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["tree_lines"]

#: attributes every span of a call repeats: left out of the tree
_SKIP = ("opero.function", "opero.attempt.round")


def tree_lines(spans: Sequence[Any]) -> list[str]:
    """The lines of the tree of ``spans`` (finished spans, any order)."""
    kids: dict[Any, list[Any]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        kids.setdefault(span.parent.span_id if span.parent else None, []).append(span)
    return [line for block in _group(kids, kids.get(None, []), 0) for line in block]


def _lines(kids: dict[Any, list[Any]], span: Any, depth: int) -> list[str]:
    shown = {k: v for k, v in (span.attributes or {}).items() if k not in _SKIP}
    text = " ".join(f"{k.removeprefix('opero.')}={v}" for k, v in shown.items())
    out = [f"{'  ' * depth}{span.name} {text}".rstrip()]
    for event in span.events:
        if event.name == "opero.wait":
            got = event.attributes or {}
            out.append(
                f"{'  ' * (depth + 1)}~ wait {got.get('opero.wait.reason')} "
                f"{got.get('opero.wait.seconds', 0):.3f}s"
            )
    for child in _group(kids, kids.get(span.context.span_id, []), depth + 1):
        out += child
    return out


def _group(kids: dict[Any, list[Any]], siblings: list[Any], depth: int) -> list[list[str]]:
    """Calls alike are shown once; attempts alike only when they follow each other."""
    shapes: dict[Any, list[Any]] = {}  # first seen first
    for n, sibling in enumerate(siblings):
        block = _lines(kids, sibling, depth)
        key = (n, *block) if sibling.name == "opero.attempt" else _shape(block)
        last = list(shapes.values())[-1] if shapes else None
        if last is not None and sibling.name == "opero.attempt" and last[0] == block:
            last[1] += 1
            continue
        shapes.setdefault(key, [block, 0])[1] += 1
    return [_times(block, times) for block, times in shapes.values()]


def _shape(block: list[str]) -> tuple[str, ...]:
    """A block without its waits."""
    return tuple(line for line in block if not line.lstrip().startswith("~ wait"))


def _times(block: list[str], times: int) -> list[str]:
    if times == 1:
        return block
    waits = any(line.lstrip().startswith("~ wait") for line in block)
    note = f"x{times}, the waits of the first" if waits else f"x{times}"
    return [f"{block[0]}  ({note})", *block[1:]]
