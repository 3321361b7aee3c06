"""What a value captured by a function means to a key that crosses processes.

A function met inside a closure cell, a default, a ``functools.partial`` or a bound object is
described by what it does, to any depth: its name, a digest of its code, its defaults, the
current values of its own closure cells and the module constants its code reads. A bound
method of a C object (``re.compile("a").findall``, ``{}.get``) is described by the object it
is bound to. Cycles (a function whose closure holds itself) become back-references, so the
description is a faithful, finite picture of the graph. Anything else is left for the
stable encoding, which raises :class:`~opero.cache.encoding.Unkeyable` for what it cannot
encode.
"""

from __future__ import annotations

import builtins
import dis
import enum
import functools
import inspect
import os
import sys
import types
from typing import Any

from opero.cache.encoding import Tag, Unkeyable, digest

__all__ = [
    "code_form",
    "code_info",
    "constants",
    "describe",
    "is_constant",
    "qualified_name",
]

_SCALARS = frozenset({str, bytes, int, float, complex, bool, type(None)})
_MAX_DEPTH = 50
_BUILTIN_TYPES = (
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)
_CALLABLES = (types.FunctionType, functools.partial, types.MethodType, *_BUILTIN_TYPES)
#: opcodes that read a module-level name, and those that assign one
_READS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_WRITES = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})


def is_constant(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is immutable configuration: str, bytes, a number (Decimal too),
    bool, None, an enum member, or a tuple or frozenset of these."""
    t = type(value)
    if t in _SCALARS:
        return True
    if t is tuple or t is frozenset:
        return depth < 20 and all(is_constant(v, depth + 1) for v in value)
    return isinstance(value, enum.Enum) or (t.__name__ == "Decimal" and t.__module__ == "decimal")


def qualified_name(fn: Any, target: Any) -> str:
    """``module.qualname`` (a script's ``__main__``: its resolved path, then the qualname)."""
    module = getattr(target, "__module__", None) or getattr(type(fn), "__module__", "?")
    qualname = getattr(target, "__qualname__", None) or type(fn).__qualname__
    if module == "__main__":
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
        if path:
            return f"{os.path.realpath(path)}:{qualname}"
    return f"{module}.{qualname}"


def code_form(code: types.CodeType) -> tuple[Any, ...]:
    """Bytecode, names and constants of ``code``, nested code objects included."""
    consts = tuple(
        code_form(c) if isinstance(c, types.CodeType) else _const(c) for c in code.co_consts
    )
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars, consts)


def _const(value: Any) -> Any:
    if value is Ellipsis or isinstance(value, complex):
        return ("repr", repr(value))
    if isinstance(value, tuple):
        return ("tuple", tuple(_const(v) for v in value))
    if isinstance(value, frozenset):
        return ("frozenset", tuple(sorted(repr(_const(v)) for v in value)))
    return value


#: id(code) -> (code, its digest, the module names it reads and never assigns)
_CODE: dict[int, tuple[types.CodeType, str, tuple[str, ...]]] = {}


def code_info(code: types.CodeType) -> tuple[str, tuple[str, ...]]:
    """The digest of ``code`` and the module-level names it (or code nested in it) reads
    but never assigns, sorted; computed once per code object."""
    entry = _CODE.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1], entry[2]
    reads: set[str] = set()
    writes: set[str] = set()
    _scan(code, reads, writes)
    names = tuple(
        sorted(n for n in reads - writes if not (n.startswith("__") and n.endswith("__")))
    )
    code_digest = digest(code_form(code))
    if len(_CODE) >= 4096:
        _CODE.clear()
    _CODE[id(code)] = (code, code_digest, names)
    return code_digest, names


def _scan(code: types.CodeType, reads: set[str], writes: set[str]) -> None:
    for instruction in dis.get_instructions(code):
        if instruction.opname in _READS:
            reads.add(instruction.argval)
        elif instruction.opname in _WRITES:
            writes.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _scan(const, reads, writes)


def constant_names(function: types.FunctionType) -> tuple[str, ...]:
    """The names ``function`` reads that may hold a module constant at a call: those that
    hold one now, or are not bound yet (nor builtins). Modules, functions, classes and
    mutable state are left out, so most functions read none."""
    _, names = code_info(function.__code__)
    space = function.__globals__
    keep = []
    for name in names:
        if name in space:
            if is_constant(space[name]):
                keep.append(name)
        elif not hasattr(builtins, name):
            keep.append(name)
    return tuple(keep)


def constants(space: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    """``(name, value)`` for each of ``names`` that holds a constant in ``space`` now."""
    found = []
    for name in names:
        value = space.get(name, space)
        if value is not space and is_constant(value):
            found.append((name, value))
    return tuple(found)


def cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a name not yet bound)
        return Tag("empty cell", ())


def describe(value: Any, memo: dict[int, int], depth: int = 0) -> Any:
    """``value`` with every function, partial, method, builtin, class and module in it
    replaced by what identifies it (``memo`` numbers the callables met so far)."""
    t = type(value)
    if t in _SCALARS:
        return value
    if depth > _MAX_DEPTH:
        raise Unkeyable("captured values nested too deeply to key")
    if t is tuple or t is list:
        return t(describe(v, memo, depth + 1) for v in value)
    if t is dict:
        return {k: describe(v, memo, depth + 1) for k, v in value.items()}
    if isinstance(value, _CALLABLES):
        seen = memo.get(id(value))
        if seen is not None:
            return Tag("ref", (seen,))
        memo[id(value)] = len(memo)
        return _callable(value, memo, depth + 1)
    return _named(value, t, memo, depth)


def _named(value: object, t: type, memo: dict[int, int], depth: int) -> object:
    """A module or class by its name, a C wrapper by what it wraps; anything else as it is,
    for the stable encoding, which tags every type it accepts."""
    if isinstance(value, types.ModuleType):
        return Tag("module", (value.__name__,))
    if isinstance(value, type):
        return Tag("class", (value.__module__, value.__qualname__))
    wrapped = getattr(value, "__wrapped__", None) if callable(value) else None
    if wrapped is not None and not inspect.isfunction(getattr(t, "__call__", None)):  # noqa: B004
        # a C wrapper such as functools.cache: keyed by the function it wraps
        return Tag("wrapper", (t.__qualname__, describe(wrapped, memo, depth + 1)))
    return value


def _callable(value: Any, memo: dict[int, int], depth: int) -> Any:
    if isinstance(value, functools.partial):
        parts = (value.func, value.args, value.keywords)
        return Tag("partial", describe(parts, memo, depth))
    if isinstance(value, types.MethodType):
        return Tag("method", describe((value.__func__, value.__self__), memo, depth))
    if isinstance(value, _BUILTIN_TYPES):
        owner = getattr(value, "__self__", None)
        name = value.__qualname__
        if owner is None or isinstance(owner, types.ModuleType):
            return Tag("builtin", (getattr(value, "__module__", None) or "", name))
        return Tag("bound builtin", (name, describe(owner, memo, depth)))
    return _function(value, memo, depth)


def _function(fn: types.FunctionType, memo: dict[int, int], depth: int) -> Any:
    target = getattr(fn, "__opero_map_target__", None)
    if target is not None:  # an @operomap wrapper: what it maps
        return Tag("operomap", (describe(target, memo, depth),))
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None and hasattr(fn, "__opero_judge__"):  # an @opero wrapper
        return Tag("opero", (describe(wrapped, memo, depth),))
    code_digest, names = code_info(fn.__code__)
    return Tag(
        "function",
        (
            qualified_name(fn, fn),
            code_digest,
            describe((fn.__defaults__, fn.__kwdefaults__), memo, depth),
            describe(tuple(cell_value(c) for c in fn.__closure__ or ()), memo, depth),
            constants(fn.__globals__, names),
        ),
    )
