"""Cache keys: a canonical, stable encoding of call arguments.

Disk (and shared) caches need keys that are the same in another process and on another
day, so they never use ``hash()`` or raw pickle bytes: arguments are encoded in a
canonical form (dict keys and set members sorted by their own encoding) and the encoding
is hashed with BLAKE2b. Every type carries its own tag (``bytes`` and ``bytearray``, a
``dict`` and a subclass of it never share an encoding). Only the types listed in
:func:`encode` are accepted; anything else raises :class:`Unkeyable` and the call runs
uncached.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from opero.cache.library_types import _str, _type_name, encode_library_type
from opero.policy import Fallbacks

__all__ = ["Tag", "Unkeyable", "digest", "encode", "hash_bytes", "short_form"]


class Unkeyable(TypeError):
    """An argument has no stable encoding."""


class Tag:
    """A private marker with parts: no argument's encoding can equal a tag's."""

    __slots__ = ("name", "parts")

    def __init__(self, name: str, parts: object) -> None:
        self.name = name
        self.parts = parts

    def __repr__(self) -> str:
        return f"<{self.name} {self.parts!r}>"


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


def short_form(values: tuple[object, ...]) -> str:
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

    Covers None, bool, int, float, complex, str, bytes, bytearray, tuple, list, dict, set,
    frozenset, enum members, dataclass instances, datetime/date/time/timedelta, Decimal,
    UUID, paths and compiled regular expressions; an instance of a subclass of one of the
    built-in types is encoded with its type and its attributes.
    """
    out: list[bytes] = []
    _encode(obj, out, 0)
    return b"".join(out)


_MAX_DEPTH = 200


def _encode(obj: object, out: list[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise Unkeyable("argument nested too deeply to encode")
    t = type(obj)
    scalar = _SCALARS.get(t)
    if scalar is not None:
        out.append(scalar(obj))
        return
    nested = _NESTED.get(t)
    if nested is not None:
        nested(obj, out, depth)
    elif isinstance(obj, enum.Enum):
        out.append(b"E" + _type_name(t) + _str(obj.name))
    elif encode_library_type(obj, t, out, depth, _encode):
        pass
    elif isinstance(obj, _BUILTINS):
        _encode_instance(obj, t, out, depth)
    else:
        raise Unkeyable(f"no stable cache-key encoding for {t.__module__}.{t.__qualname__}")


#: exact types encoded by their value alone (each form has its own first letter)
_SCALARS: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda obj: b"N",
    bool: lambda obj: b"T" if obj else b"F",
    # hex: no limit on digits (str() refuses ints over 4300 digits)
    int: lambda obj: b"i" + _str(format(obj, "x")),
    float: lambda obj: b"f" + _str(obj.hex()),
    str: lambda obj: b"s" + _str(obj),
    bytes: lambda obj: b"b%d:" % len(obj) + obj,
    bytearray: lambda obj: b"y%d:" % len(obj) + bytes(obj),
    complex: lambda obj: b"c" + _str(obj.real.hex()) + _str(obj.imag.hex()),
}


def _sequence(obj: Sequence[object], out: list[bytes], depth: int) -> None:
    out.append((b"(" if type(obj) is tuple else b"[") + b"%d:" % len(obj))
    for item in obj:
        _encode(item, out, depth + 1)


def _mapping(obj: Mapping[object, object], out: list[bytes], depth: int) -> None:
    items = sorted((encode_nested(k, depth), encode_nested(v, depth)) for k, v in obj.items())
    out.append(b"{%d:" % len(items))
    for k, v in items:
        out.append(k)
        out.append(v)


def _members(obj: Collection[object], out: list[bytes], depth: int) -> None:
    members = sorted(encode_nested(m, depth) for m in obj)
    out.append((b"<" if type(obj) is set else b">") + b"%d:" % len(members))
    out.extend(members)


def _tag(obj: Tag, out: list[bytes], depth: int) -> None:
    out.append(b"@" + _str(obj.name))
    _encode(obj.parts, out, depth + 1)


#: exact container types, encoded member by member
_NESTED: dict[type, Callable[[Any, list[bytes], int], None]] = {
    tuple: _sequence,
    list: _sequence,
    dict: _mapping,
    set: _members,
    frozenset: _members,
    Tag: _tag,
    # fallback(...) marks values for type checkers only: the same call as a plain tuple
    Fallbacks: lambda obj, out, depth: _sequence(tuple(obj), out, depth),
}


#: built-in types whose subclasses are encoded with their type, their value as the built-in
#: (read by the built-in's own method, whatever the subclass overrides) and attributes
_AS_BUILTIN: dict[type, Callable[[Any], Any]] = {
    dict: dict.copy,
    list: list.copy,
    tuple: lambda obj: tuple.__getitem__(obj, slice(None)),
    frozenset: frozenset.copy,
    set: set.copy,
    bytearray: bytearray.copy,
    bytes: bytes.__bytes__,
    str: str.__str__,
    int: int.__int__,
    float: float.__float__,
    complex: complex.__complex__,
}
_BUILTINS = tuple(_AS_BUILTIN)


def _encode_instance(obj: object, t: type, out: list[bytes], depth: int) -> None:
    """A subclass of a built-in type: its type, its value as that built-in, its attributes."""
    base = next(b for b in _BUILTINS if isinstance(obj, b))
    out.append(b"I" + _type_name(t))
    _encode(_AS_BUILTIN[base](obj), out, depth + 1)
    _encode(_attributes(obj), out, depth + 1)


def _attributes(obj: object) -> dict[str, Any]:
    """An instance's ``__dict__`` and the values of the ``__slots__`` of its classes."""
    found = dict(getattr(obj, "__dict__", None) or {})
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            name = slot
            if slot.startswith("__") and not slot.endswith("__"):  # name-mangled
                name = f"_{klass.__name__.lstrip('_')}{slot}"
            try:
                found[name] = getattr(obj, name)
            except AttributeError:  # a slot never set
                continue
    return found


def encode_nested(obj: object, depth: int) -> bytes:
    out: list[bytes] = []
    _encode(obj, out, depth + 1)
    return b"".join(out)
