"""Stable encodings of the standard library's value types (dataclass instances, datetime,
Decimal, UUID, paths, compiled patterns) for :mod:`opero.cache.encoding`, and the length-
prefixed text and type names every encoding is made of."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import TypeAlias

__all__ = ["encode_library_type"]

#: encodes a value met inside another one (the encoding's own recursion)
Nested: TypeAlias = Callable[[object, list[bytes], int], None]
#: appends a value's encoding and says True when the module's types include the value's
Encoder: TypeAlias = Callable[[ModuleType, object, type, list[bytes], int, Nested], bool]


def _str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return b"%d:" % len(b) + b


def _type_name(t: type) -> bytes:
    return _str(f"{t.__module__}.{t.__qualname__}")


def _subclass(t: type, base: type) -> bytes:
    """Nothing for ``base`` itself (its tag says it), else the subclass's name."""
    return b"" if t is base else b"!" + _type_name(t)


def encode_library_type(obj: object, t: type, out: list[bytes], depth: int, nested: Nested) -> bool:
    """Dataclasses, datetime, Decimal, UUID, paths, patterns. A module that was never imported
    cannot have made ``obj``, so each check looks in ``sys.modules`` instead of importing."""
    modules = sys.modules
    for name, encoder in _LIBRARIES:
        module = modules.get(name)
        if module is not None and encoder(module, obj, t, out, depth, nested):
            return True
    return False


def _dataclass(
    module: ModuleType, obj: object, t: type, out: list[bytes], depth: int, nested: Nested
) -> bool:
    if not module.is_dataclass(obj) or isinstance(obj, type):
        return False
    out.append(b"D" + _type_name(t))
    fields = module.fields(obj)
    out.append(b"%d:" % len(fields))
    for f in fields:
        out.append(_str(f.name))
        nested(getattr(obj, f.name), out, depth + 1)
    return True


def _datetime(
    module: ModuleType, obj: object, t: type, out: list[bytes], depth: int, nested: Nested
) -> bool:
    if isinstance(obj, module.datetime | module.date | module.time):
        out.append(b"t" + _type_name(t) + _str(obj.isoformat()))
        return True
    if isinstance(obj, module.timedelta):
        out.append(b"d" + _subclass(t, module.timedelta))
        out.append(_str(repr((obj.days, obj.seconds, obj.microseconds))))
        return True
    return False


def _decimal(
    module: ModuleType, obj: object, t: type, out: list[bytes], depth: int, nested: Nested
) -> bool:
    if not isinstance(obj, module.Decimal):
        return False
    out.append(b"m" + _subclass(t, module.Decimal) + _str(module.Decimal.__str__(obj)))
    return True


def _uuid(
    module: ModuleType, obj: object, t: type, out: list[bytes], depth: int, nested: Nested
) -> bool:
    if not isinstance(obj, module.UUID):
        return False
    out.append(b"u" + _subclass(t, module.UUID) + _str(obj.hex))
    return True


def _path(
    module: ModuleType, obj: object, t: type, out: list[bytes], depth: int, nested: Nested
) -> bool:
    if not isinstance(obj, module.PurePath):
        return False
    out.append(b"p" + _type_name(t) + _str(obj.as_posix()))
    return True


def _pattern(
    module: ModuleType, obj: object, t: type, out: list[bytes], depth: int, nested: Nested
) -> bool:
    if not isinstance(obj, module.Pattern):
        return False
    out.append(b"r")
    nested((obj.pattern, obj.flags), out, depth + 1)
    return True


#: (module, its encoder): the encoder appends ``obj``'s encoding and says True if the
#: module's types include ``obj``'s
_LIBRARIES: tuple[tuple[str, Encoder], ...] = (
    ("dataclasses", _dataclass),
    ("datetime", _datetime),
    ("decimal", _decimal),
    ("uuid", _uuid),
    ("pathlib", _path),
    ("re", _pattern),
)
