"""How workers find the function of a map: a module-level function by name (the module
attribute is the map wrapper, so the function cannot be pickled by reference), anything
else pickled whole."""

from __future__ import annotations

import importlib
import pickle

from opero.maps.records import Function

__all__ = ["ByValue", "FunctionRef", "process_target", "resolved"]


class FunctionRef:
    """A by-name reference to a module-level function, resolved in the worker.

    The module attribute of an ``@operomap``-decorated function is the map wrapper, so the
    function itself cannot be pickled by reference; this names it instead and, in the
    worker, unwraps the map wrapper to the function it decorates.
    """

    __slots__ = ("module", "qualname")

    def __init__(self, module: str, qualname: str) -> None:
        self.module = module
        self.qualname = qualname

    @classmethod
    def of(cls, fn: Function) -> FunctionRef:
        return cls(fn.__module__, fn.__qualname__)

    def resolve(self) -> Function:
        obj: object = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        target = getattr(obj, "__opero_map_target__", None)
        found: object = target if target is not None else obj
        if not callable(found):
            raise TypeError(f"{self} is not callable")
        return found

    def __reduce__(self) -> tuple[object, ...]:
        return (FunctionRef, (self.module, self.qualname))

    def __repr__(self) -> str:
        return f"{self.module}.{self.qualname}"


class ByValue:
    """A callable sent to worker processes pickled whole (a bound method with its ``self``,
    a ``functools.partial``, a callable object)."""

    __slots__ = ("fn", "module", "qualname")

    def __init__(self, fn: Function) -> None:
        self.fn = fn
        self.module = getattr(fn, "__module__", None) or type(fn).__module__
        self.qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__

    def resolve(self) -> Function:
        return self.fn

    def __reduce__(self) -> tuple[object, ...]:
        return (ByValue, (self.fn,))


def process_target(fn: Function) -> FunctionRef | ByValue:
    """How worker processes find ``fn``: a module-level function by name; a bound method,
    partial or callable object pickled whole. Raises ``TypeError`` saying why and what to do
    when neither works (a lambda, a closure, an unpicklable object)."""
    import inspect

    if inspect.isfunction(fn):
        name = fn.__qualname__
        if "<locals>" in name or "<lambda>" in name:
            raise TypeError(
                f"worker processes cannot load {name!r}: a lambda or a function defined "
                "inside another function cannot be loaded by name in a worker. Define it at "
                "module level (for a script, keep the map call under "
                "`if __name__ == '__main__':`), or use mode='thread' / mode='async'."
            )
        return FunctionRef.of(fn)
    try:
        pickle.dumps(fn)
    except Exception as exc:
        raise TypeError(
            f"worker processes cannot receive {fn!r}: it cannot be pickled ({exc!r}). A bound "
            "method, functools.partial or callable object is sent whole, so it and what it "
            "holds must be picklable; or use mode='thread' / mode='async'."
        ) from exc
    return ByValue(fn)


_resolved: dict[tuple[str, str], Function] = {}


def resolved(target: FunctionRef | ByValue | Function) -> Function:
    """The function a foreign executor runs (one resolved by name is kept)."""
    if isinstance(target, ByValue):
        return target.resolve()
    if not isinstance(target, FunctionRef):
        return target
    key = (target.module, target.qualname)
    fn = _resolved.get(key)
    if fn is None:
        fn = _resolved[key] = target.resolve()
    return fn
