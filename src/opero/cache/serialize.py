"""How cached values become bytes for the disk and Redis backends.

``"pickle"`` (default) stores any picklable value compactly (protocol 5). Unpickling runs
code, so a cache must never be writable by anyone you do not trust. ``"json"`` stores only
JSON values (dict, list, str, int, float, bool, None; tuples come back as lists) and cannot
run code when read. A value the serializer refuses is returned uncached.
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["SERIALIZERS", "Unserializable", "dumps", "loads"]

SERIALIZERS = ("pickle", "json")


class Unserializable(TypeError):
    """The value cannot be stored with the chosen serializer."""


def dumps(value: object, serializer: str) -> bytes:
    try:
        if serializer == "json":
            import json

            return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        return pickle.dumps(value, protocol=5)
    except (TypeError, ValueError, AttributeError, RecursionError, pickle.PicklingError) as exc:
        from opero.core.health import shorten  # an error's text may quote a huge value

        raise Unserializable(f"{type(value).__qualname__}: {shorten(str(exc))}") from exc


def loads(data: bytes, serializer: str) -> Any:
    if serializer == "json":
        import json

        return json.loads(data)
    return pickle.loads(data)
