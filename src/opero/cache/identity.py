"""What a function *does*, for keys that cross processes (disk, Redis).

A key names the function by module and qualified name (a script's ``__main__`` by the
script's resolved path), and adds a digest of its code (bytecode, constants and names,
nested code objects included), its defaults and what a ``functools.partial``, a bound method
(of a Python or a C object) or a callable object binds. Read at each call: the closure's
cell values, the module constants the function reads (str, bytes, numbers, bool, None,
enum members, tuples and frozensets of these; never a name the function assigns itself, nor
mutable module state), and the objects it is bound to unless they are such constants. A
function met in any of these is described the same way, to any depth (see
:mod:`opero.cache.behaviour`). So two closures or lambdas that differ in code or captured
values never share an entry, and editing a function starts a fresh cache for it (edits to
*other* functions it calls by their module-level name are not seen). A function with none of
these pays nothing per call.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
import types
from collections.abc import Callable
from typing import Any

from opero.cache.behaviour import (
    cell_value,
    code_form,
    constant_names,
    constants,
    describe,
    is_constant,
    qualified_name,
)
from opero.cache.encoding import Tag, digest

__all__ = ["Identity", "identify"]

_BOUND_BUILTINS = (types.BuiltinFunctionType, types.MethodWrapperType)
_UNSET = object()
_DEFINITIONS = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    functools.partial,
    type,
    types.ModuleType,
)
_UNSETS = itertools.repeat(_UNSET)  # endless: map stops at the names' end

#: what a function binds: ``("partial", args, keywords)``, ``("self", obj)`` or
#: ``("object", obj)``; the objects are the user's
Bound = tuple[Any, ...]
#: (module namespace, names that may hold constants there), read at each call
Reads = tuple[tuple[dict[str, Any], tuple[str, ...]], ...]


class Identity:
    """The stable name and version of one decorated function, and what of it is read at
    each call."""

    __slots__ = ("_last", "cells", "code", "dynamic", "live", "name", "problem", "reads", "version")

    def __init__(
        self,
        name: str,
        code: str,
        version: str,
        *,
        cells: tuple[Any, ...] = (),
        reads: Reads = (),
        live: tuple[Any, ...] | None = None,
        problem: str | None = None,
    ) -> None:
        self.name = name  #: ``module.qualname`` (``<script path>:qualname`` in ``__main__``)
        self.code = code  #: digest of the code alone (keys made by ``cache_key``)
        self.version = version  #: digest of code, defaults and bound values fixed at decoration
        self.cells = cells  #: closure cells, read at each call
        self.reads = reads  #: (module namespace, names) that may hold constants, read at each call
        self.live = live  #: bound objects and defaults read at each call (None: fixed)
        self.problem = problem  #: why it cannot be keyed stably (None: it can)
        #: whether :meth:`state` has anything to read
        self.dynamic = bool(cells or reads) or live is not None
        self._last: tuple[tuple[Any, ...], str] | None = None

    def state(self) -> str:
        """Digest of what is read at each call ('' when nothing is); raises
        :class:`~opero.cache.encoding.Unkeyable` when a value cannot be encoded. It depends
        on the values only: a name found to hold a function is no longer read, and the
        digest stays the same."""
        if not self.cells and self.live is None:
            return self._constants_only() if self.reads else ""
        memo: dict[int, int] = {}
        cells = describe(tuple(cell_value(c) for c in self.cells), memo)
        live = describe(self.live, memo) if self.live is not None else None
        found = self._found()
        if live is None and not found:
            return digest(cells)  # a closure alone: the same key as before these were read
        return digest(Tag("state", (cells, live, found)))

    def _found(self) -> tuple[Any, ...]:
        return tuple(pair for space, names in self.reads for pair in constants(space, names))

    def _constants_only(self) -> str:
        """Module constants alone: the digest is reused while every value is the same object."""
        if len(self.reads) == 1:  # as a rule: one namespace, read in C
            space, names = self.reads[0]
            values = tuple(map(space.get, names, _UNSETS))
        else:
            values = tuple(s.get(n, _UNSET) for s, names in self.reads for n in names)
        last = self._last
        if last is not None and all(map(operator.is_, values, last[0])):
            return last[1]
        if any(isinstance(v, _DEFINITIONS) for v in values):
            self._prune()
            return self._constants_only() if self.reads else ""
        found = self._found()
        result = digest(Tag("globals", found)) if found else ""
        self._last = (values, result)
        return result

    def _prune(self) -> None:
        """Stop reading names that hold a function, class or module (a helper defined
        below the decorated function, say): definitions, not configuration."""
        self.reads = tuple(
            (space, kept)
            for space, names in self.reads
            if (kept := tuple(n for n in names if not isinstance(space.get(n), _DEFINITIONS)))
        )
        self._last = None
        self.dynamic = bool(self.cells or self.reads) or self.live is not None


def identify(fn: Callable[..., Any]) -> Identity:
    """The identity of ``fn`` (a function, partial, bound method or callable object);
    never raises: what cannot be keyed is named in :attr:`Identity.problem`."""
    bound, target = _unwrap(fn)
    name = qualified_name(fn, target)
    chain = _wrapped_chain(target)
    code = digest((name, tuple(code_form(function.__code__) for function in chain)))
    try:
        cells, reads = _read_per_call(chain)
        live, version = _version(code, bound, chain)
    except Exception as exc:  # Unkeyable, RecursionError, an attribute that raises...
        return Identity(name, code, "", problem=f"{name}: {exc}")
    return Identity(name, code, version, cells=cells, reads=reads, live=live)


def _read_per_call(chain: list[types.FunctionType]) -> tuple[tuple[Any, ...], Reads]:
    """The closure cells and the (namespace, constant names) of the functions in ``chain``
    that are not opero's own wrappers."""
    own = [f for f in chain if not hasattr(f, "__opero_judge__")]
    cells = tuple(cell for function in own for cell in (function.__closure__ or ()))
    reads = tuple(
        (function.__globals__, names) for function in own if (names := constant_names(function))
    )
    return cells, reads


def _version(
    code: str, bound: tuple[Bound, ...], chain: list[types.FunctionType]
) -> tuple[tuple[Any, ...] | None, str]:
    """What is read at each call of the bound objects and defaults (None: nothing, they are
    fixed) and the version digest; raises when they cannot be keyed at all."""
    defaults = tuple((function.__defaults__, function.__kwdefaults__) for function in chain)
    memo: dict[int, int] = {}
    fixed_defaults = describe(defaults, memo)
    if memo or not all(_fixed(b) for b in bound):
        # a function among the defaults (its closure may change) or a mutable bound object
        live = (bound, defaults)
        digest(describe(live, {}))  # fails now if it cannot be keyed at all
        return live, digest((code, "live"))
    return None, digest((code, (describe(bound, {}), fixed_defaults)))


def _unwrap(fn: object) -> tuple[tuple[Bound, ...], object]:
    """What ``fn`` binds (partial arguments, ``self``, a callable object) and the function
    or builtin underneath."""
    bound: list[Bound] = []
    target = fn
    for _ in range(20):
        inner = _unwrap_once(target, bound)
        if inner is None:
            break
        target = inner
    return tuple(bound), target


def _unwrap_once(target: Any, bound: list[Bound]) -> object | None:
    """What ``target`` wraps (what it binds added to ``bound``), or None when ``target`` is
    what lies underneath."""
    if isinstance(target, functools.partial):
        bound.append(("partial", target.args, target.keywords))
        return target.func
    if inspect.ismethod(target):
        bound.append(("self", target.__self__))
        return target.__func__
    if isinstance(target, _BOUND_BUILTINS):  # a C function, perhaps bound to an object
        owner = getattr(target, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            bound.append(("self", owner))
        return None
    if not inspect.isfunction(target) and not isinstance(target, type) and callable(target):
        return _unwrap_object(target, bound)
    return None


def _unwrap_object(target: Any, bound: list[Bound]) -> object | None:
    """A callable object: its class's ``__call__``, or what a C wrapper wraps; None for a C
    callable object (``operator.itemgetter``), keyed by its own encoding."""
    call = getattr(type(target), "__call__", None)  # noqa: B004
    if inspect.isfunction(call):
        bound.append(("object", target))
        return call
    if callable(getattr(target, "__wrapped__", None)):  # a C wrapper: functools.cache
        return target.__wrapped__  # type: ignore[no-any-return]
    bound.append(("object", target))
    return None


def _fixed(bound: Bound) -> bool:
    """Whether a bound part holds only constants (keyed once, at decoration)."""
    if bound[0] == "partial":
        return is_constant(bound[1]) and all(is_constant(v) for v in bound[2].values())
    return is_constant(bound[1]) or isinstance(bound[1], type | types.ModuleType)


def _wrapped_chain(target: Any) -> list[types.FunctionType]:
    chain: list[types.FunctionType] = []
    current = target
    while inspect.isfunction(current) and current not in chain and len(chain) < 20:
        chain.append(current)
        current = getattr(current, "__wrapped__", None)
    return chain
