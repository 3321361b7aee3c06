"""The hashable form of an unhashable argument, for memory keys.

A list, a dict, a set (or a tuple holding one) becomes a :class:`Frozen` key tagged with the
container's exact type: equal containers of one type share an entry (a dict's order does not
matter), and no hashable argument, nor a container of another type, can equal it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from opero.cache.encoding import Unkeyable

__all__ = ["Frozen", "freeze"]


class Frozen:
    """The hashable form of an unhashable container: its exact type and frozen items."""

    __slots__ = ("_hash", "items", "kind")

    def __init__(self, kind: type, items: object, hashed: int | None = None) -> None:
        self.kind = kind
        self.items = items
        self._hash = hash((kind, items)) if hashed is None else hashed

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Frozen
            and other._hash == self._hash
            and other.kind is self.kind
            and other.items == self.items
        )

    def __repr__(self) -> str:
        return f"<{self.kind.__name__} {self.items!r}>"


def freeze(obj: object) -> Hashable:
    """``obj`` if it is hashable, else its :class:`Frozen` form; raises if it has none."""
    try:
        hash(obj)
    except TypeError:
        pass
    else:
        return obj
    kind = type(obj)
    if isinstance(obj, dict):
        return _freeze_dict(kind, obj)
    if isinstance(obj, list | tuple):
        return Frozen(kind, _freeze_items(obj))
    if isinstance(obj, set | frozenset):
        return Frozen(kind, frozenset(obj))
    raise Unkeyable(f"unhashable argument of type {kind.__qualname__}")


def _freeze_dict(kind: type, obj: dict[Any, Any]) -> Frozen:
    try:  # fast: a copy, hashed from its keys and values in no order, compared with ==
        hashed = hash((kind, frozenset(obj), frozenset(obj.values())))
    except TypeError:
        return Frozen(kind, frozenset((k, freeze(v)) for k, v in obj.items()))
    return Frozen(kind, dict(obj), hashed)


def _freeze_items(obj: Iterable[object]) -> tuple[object, ...]:
    try:
        items = tuple(obj)
        hash(items)
    except TypeError:
        return tuple(freeze(x) for x in obj)
    return items
