"""What a function *does*, for keys that cross processes (disk, Redis).

A key names the function by module and qualified name (a script's ``__main__`` by the
script's resolved path), and adds a digest of its code (bytecode, constants and names,
nested code objects included), its defaults and what a ``functools.partial``, a bound method
or a callable object binds; a closure's cell values are read at each call. So two closures or
lambdas that differ in code or captured values never share an entry, and editing a function
starts a fresh cache for it (edits to *other* functions it calls are not seen). Computed once
per decorated function; a function without a closure pays nothing per call.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from opero.cache.encoding import Unkeyable, digest

__all__ = ["Identity", "identify"]


class Identity:
    """The stable name and version of one decorated function."""

    __slots__ = ("cells", "code", "name", "problem", "version")

    def __init__(
        self, name: str, code: str, version: str, cells: tuple[Any, ...], problem: str | None
    ) -> None:
        self.name = name  #: ``module.qualname`` (``<script path>:qualname`` in ``__main__``)
        self.code = code  #: digest of the code alone (keys made by ``cache_key``)
        self.version = version  #: digest of code, defaults and bound values
        self.cells = cells  #: closure cells, read at each call
        self.problem = problem  #: why it cannot be keyed stably (None: it can)

    def closure_digest(self) -> str:
        """Digest of the closure's current values ('' without a closure); raises
        :class:`Unkeyable` when one cannot be encoded."""
        if not self.cells:
            return ""
        return digest(tuple(_portable(_cell_value(c), set()) for c in self.cells))


def identify(fn: Callable[..., Any]) -> Identity:
    """The identity of ``fn`` (a function, partial, bound method or callable object)."""
    bound: list[Any] = []
    target: Any = fn
    for _ in range(20):
        if isinstance(target, functools.partial):
            bound.append(("partial", target.args, target.keywords))
            target = target.func
        elif inspect.ismethod(target):
            bound.append(("self", target.__self__))
            target = target.__func__
        elif not inspect.isfunction(target) and not isinstance(target, type) and callable(target):
            call = getattr(type(target), "__call__", None)  # noqa: B004
            if not inspect.isfunction(call):
                break
            bound.append(("object", target))
            target = call
        else:
            break
    name = _name(fn, target)
    chain = _wrapped_chain(target)
    cells = tuple(cell for function in chain for cell in (function.__closure__ or ()))
    code = digest((name, tuple(_code(function.__code__) for function in chain)))
    problem: str | None = None
    try:
        values = (
            tuple(_portable(b, set()) for b in bound),
            tuple(_defaults(function) for function in chain),
        )
        version = digest((code, values))
    except (Unkeyable, RecursionError, ValueError) as exc:
        problem = f"{name}: {exc}"
        version = ""
    return Identity(name, code, version, cells, problem)


def _name(fn: Any, target: Any) -> str:
    module = getattr(target, "__module__", None) or getattr(type(fn), "__module__", "?")
    qualname = getattr(target, "__qualname__", None) or type(fn).__qualname__
    if module == "__main__":
        main = sys.modules.get("__main__")
        path = getattr(main, "__file__", None)
        if path:
            return f"{os.path.realpath(path)}:{qualname}"
    return f"{module}.{qualname}"


def _wrapped_chain(target: Any) -> list[types.FunctionType]:
    chain: list[types.FunctionType] = []
    current = target
    while inspect.isfunction(current) and current not in chain and len(chain) < 20:
        chain.append(current)
        current = getattr(current, "__wrapped__", None)
    return chain


def _defaults(function: types.FunctionType) -> tuple[Any, ...]:
    return (_portable(function.__defaults__, set()), _portable(function.__kwdefaults__, set()))


def _code(code: types.CodeType) -> tuple[Any, ...]:
    consts = tuple(_code(c) if isinstance(c, types.CodeType) else _const(c) for c in code.co_consts)
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars, consts)


def _const(value: Any) -> Any:
    if value is Ellipsis or isinstance(value, complex):
        return ("repr", repr(value))
    if isinstance(value, tuple):
        return ("tuple", tuple(_const(v) for v in value))
    if isinstance(value, frozenset):
        return ("frozenset", tuple(sorted(repr(_const(v)) for v in value)))
    return value


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a name not yet bound)
        return ("empty cell",)


def _portable(value: Any, seen: set[int]) -> Any:
    """``value`` with functions, classes and modules replaced by what names them."""
    if isinstance(value, types.ModuleType):
        return ("module", value.__name__)
    if isinstance(value, type):
        return ("class", value.__module__, value.__qualname__)
    if inspect.isfunction(value) or isinstance(value, functools.partial):
        if id(value) in seen:
            return ("function", getattr(value, "__qualname__", "?"))
        seen.add(id(value))
        inner = identify(value)
        if inner.problem is not None:
            raise Unkeyable(inner.problem)
        return ("function", inner.name, inner.version)
    if inspect.isbuiltin(value):
        return ("builtin", getattr(value, "__module__", None), value.__qualname__)
    if isinstance(value, tuple | list):
        return type(value)(_portable(v, seen) for v in value)
    if isinstance(value, dict):
        return {k: _portable(v, seen) for k, v in value.items()}
    return value
