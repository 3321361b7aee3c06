"""Cache keys: a canonical, stable encoding of call arguments.

Disk (and shared) caches need keys that are the same in another process and on another
day, so they never use ``hash()`` or raw pickle bytes: arguments are encoded in a
canonical form (dict keys and set members sorted by their own encoding) and the encoding
is hashed with BLAKE2b. Only the types listed in :func:`encode` are accepted; anything
else raises :class:`Unkeyable` and the call runs uncached.
"""

from __future__ import annotations

import enum
import sys
from typing import Any

__all__ = ["Unkeyable", "digest", "encode", "hash_bytes", "short_form"]


class Unkeyable(TypeError):
    """An argument has no stable encoding."""


_BLAKE2B: list[Any] = []  # hashlib.blake2b, imported on first use (keeps import opero cheap)


def digest(obj: object) -> str:
    """Hex BLAKE2b digest (128 bits) of the stable encoding of ``obj``."""
    return hash_bytes(encode(obj))


def hash_bytes(data: bytes) -> str:
    """Hex BLAKE2b digest (128 bits) of ``data``."""
    if not _BLAKE2B:
        import hashlib

        _BLAKE2B.append(hashlib.blake2b)
    return str(_BLAKE2B[0](data, digest_size=16).hexdigest())


_SIMPLE = frozenset({int, str, float, bool, type(None)})


def short_form(values: tuple[Any, ...]) -> str:
    """A stable text form of ``values``: for None, bool, int, float and str alone, their
    ``repr`` (deterministic for these types); else the stable encoding; either one as it is
    when short, else its digest. The four forms never collide: they start with ``r``,
    ``R``, ``e`` or ``h``."""
    for value in values:
        if type(value) not in _SIMPLE:
            break
    else:
        try:
            text = repr(values)
        except ValueError:  # an int too long for repr: the encoding covers it
            pass
        else:
            if len(text) <= 64:
                return "r" + text
            return "R" + hash_bytes(text.encode("utf-8", "surrogatepass"))
    data = encode(values)
    if len(data) <= 40:
        return "e" + data.hex()
    return "h" + hash_bytes(data)


def encode(obj: object) -> bytes:
    """The canonical byte encoding of ``obj``; raises :class:`Unkeyable` for other types.

    Covers None, bool, int, float, str, bytes, tuple, list, dict, set, frozenset, enum
    members, dataclass instances, datetime/date/time/timedelta, Decimal, UUID and paths.
    """
    out: list[bytes] = []
    _encode(obj, out, 0)
    return b"".join(out)


def _str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return b"%d:" % len(b) + b


def _type_name(t: type) -> bytes:
    return _str(f"{t.__module__}.{t.__qualname__}")


_MAX_DEPTH = 200


def _encode(obj: Any, out: list[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise Unkeyable("argument nested too deeply to encode")
    t = type(obj)
    if obj is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if obj else b"F")
    elif isinstance(obj, enum.Enum):
        out.append(b"E" + _type_name(t) + _str(obj.name))
    elif t is int:  # hex: no limit on digits (str() refuses ints over 4300 digits)
        out.append(b"i" + _str(format(obj, "x")))
    elif t is float:
        out.append(b"f" + _str(obj.hex()))
    elif t is str:
        out.append(b"s" + _str(obj))
    elif t is bytes or t is bytearray:
        out.append(b"b%d:" % len(obj) + bytes(obj))
    elif isinstance(obj, tuple | list):
        tag = b"(" if isinstance(obj, tuple) else b"["
        out.append(tag + b"%d:" % len(obj))
        for item in obj:
            _encode(item, out, depth + 1)
    elif isinstance(obj, dict):
        items = sorted((encode_nested(k, depth), encode_nested(v, depth)) for k, v in obj.items())
        out.append(b"{%d:" % len(items))
        for k, v in items:
            out.append(k)
            out.append(v)
    elif isinstance(obj, set | frozenset):
        members = sorted(encode_nested(m, depth) for m in obj)
        out.append(b"<%d:" % len(members))
        out.extend(members)
    elif _encode_library_type(obj, t, out, depth):
        pass
    elif isinstance(obj, int):  # int subclasses that are not enums
        out.append(b"i" + _type_name(t) + _str(format(int(obj), "x")))
    elif isinstance(obj, str):
        out.append(b"s" + _type_name(t) + _str(str(obj)))
    elif isinstance(obj, float):
        out.append(b"f" + _type_name(t) + _str(float(obj).hex()))
    else:
        raise Unkeyable(f"no stable cache-key encoding for {t.__module__}.{t.__qualname__}")


def _encode_library_type(obj: Any, t: type, out: list[bytes], depth: int) -> bool:
    """Dataclasses, datetime, Decimal, UUID, paths. A module that was never imported cannot
    have made ``obj``, so each check looks in ``sys.modules`` instead of importing."""
    modules = sys.modules
    dataclasses = modules.get("dataclasses")
    if dataclasses is not None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out.append(b"D" + _type_name(t))
        fields = dataclasses.fields(obj)
        out.append(b"%d:" % len(fields))
        for f in fields:
            out.append(_str(f.name))
            _encode(getattr(obj, f.name), out, depth + 1)
        return True
    dt = modules.get("datetime")
    if dt is not None:
        if isinstance(obj, dt.datetime | dt.date | dt.time):
            out.append(b"t" + _type_name(t) + _str(obj.isoformat()))
            return True
        if isinstance(obj, dt.timedelta):
            out.append(b"d" + _str(repr((obj.days, obj.seconds, obj.microseconds))))
            return True
    decimal = modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        out.append(b"m" + _str(str(obj)))
        return True
    uuid = modules.get("uuid")
    if uuid is not None and isinstance(obj, uuid.UUID):
        out.append(b"u" + _str(obj.hex))
        return True
    pathlib = modules.get("pathlib")
    if pathlib is not None and isinstance(obj, pathlib.PurePath):
        out.append(b"p" + _str(obj.as_posix()))
        return True
    return False


def encode_nested(obj: object, depth: int) -> bytes:
    out: list[bytes] = []
    _encode(obj, out, depth + 1)
    return b"".join(out)
