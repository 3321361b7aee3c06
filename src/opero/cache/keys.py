"""The cache key of a call.

Memory keys follow ``functools.lru_cache`` (arguments as given, hashable values used
directly) so that a hit costs a tuple and a dict lookup. An unhashable argument (a list, a
dict, a set, or a tuple holding one) takes a hashable form (:mod:`opero.cache.frozen`) tagged with
the container's exact type, so equal containers of one type share an entry (a dict's order
does not matter) and no hashable argument, nor a container of another type, can share it.
Disk and Redis keys use the stable encoding of :mod:`opero.cache.encoding`. For an instance
method with the memory store, ``self`` is keyed by identity and its entries are dropped when
the instance dies, so the cache keeps no instance alive; that bookkeeping is bounded by the
store's size. Building a key never raises: an argument that cannot be keyed makes the call
run uncached.
"""

from __future__ import annotations

import inspect
import threading
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterable

from loguru import logger

from opero.cache.calls import Args, Kwargs
from opero.cache.encoding import Tag, Unkeyable, digest, short_form
from opero.cache.frozen import Frozen, freeze
from opero.cache.identity import Identity
from opero.cache.store import KWD_MARK

__all__ = ["CallKeys", "Frozen", "freeze", "key_prefix"]

_USER = object()  # private markers: no argument can equal them
_STABLE = object()
_DEFAULT = Tag("default", ())


def key_prefix(namespace: str, identity: Identity) -> str:
    """``namespace:module.qualname``: the start of every disk and Redis key of a function
    (every version of it: ``cache_clear()`` removes them all)."""
    return f"{namespace}:{identity.name}"


class CallKeys:
    """Builds the keys of one decorated function's calls."""

    def __init__(
        self,
        func: Callable[..., object],
        name: str,
        *,
        cache_key: Callable[..., object] | None,
        backend: str,
        prefix: str,
        discard: Callable[[Iterable[Hashable]], None] | None,
        live: Callable[[Hashable], bool] | None = None,
        maxsize: int = 10_000,
        identity: Identity | None = None,
    ) -> None:
        self.name = name
        self.cache_key = cache_key
        self.memory = backend == "memory"
        self.prefix = prefix
        shape = _Shape(func)
        self.signature = shape.signature
        #: instance methods: ``self`` is keyed by identity in memory
        self.keys_self = shape.first == "self" and self.memory
        #: a call giving exactly these many positional arguments binds as given
        self._complete = shape.complete
        #: each parameter's default, to name a default the function's identity holds
        self._defaults = shape.defaults
        self.identity = identity
        self._warned = False
        if identity is not None:
            self._versioned = f"{prefix}:{identity.version}"
            self._user_prefix = f"{prefix}:{identity.code}:k"
            if identity.problem is not None and cache_key is None:
                self._warn(f"its definition cannot be keyed stably ({identity.problem})")
        self._discard = discard
        self._live = live  # is this key still in the store?
        self._limit = 2 * maxsize + 16  # tracked keys before a clean-up of evicted ones
        self._tracked = 0
        self._owners: dict[int, object] = {}  # a weak reference, or the owner itself
        self._owner_keys: dict[int, set[Hashable]] = {}
        self._owner_lock = threading.Lock()

    def key(self, args: Args, kwargs: Kwargs) -> Hashable | None:
        """The cache key of a call, or None when it is not cacheable (never raises but for
        the user's own ``cache_key`` function)."""
        if self.cache_key is not None:
            result = self.cache_key(*args, **kwargs)
            if result is None:
                return None
            return self._guard(self._user_key, result)
        if self.memory:
            return self._guard(self._memory_key, args, kwargs)
        try:
            return self._stable_key(args, kwargs)
        except Exception as exc:  # see _guard
            logger.debug("{}: call not cached: {!r}", self.name, exc)
            return None

    def _guard(self, build: Callable[..., Hashable], *parts: object) -> Hashable | None:
        try:
            return build(*parts)
        except Exception as exc:  # RecursionError, a raising __hash__, an int too long...
            logger.debug("{}: call not cached: {!r}", self.name, exc)
            return None

    def _stable_key(self, args: Args, kwargs: Kwargs) -> Hashable:
        identity = self.identity
        assert identity is not None
        if identity.problem is not None:
            raise Unkeyable(identity.problem)
        values = args if not kwargs and len(args) == self._complete else self._bind(args, kwargs)
        try:
            arguments = short_form(values)
        except Unkeyable:  # a default with no encoding of its own (a function)
            arguments = self._naming_defaults(values)
        if identity.dynamic:  # closure values, module constants, bound objects
            state = self._state(identity)
            if state:  # a hex digest: never mistaken for the argument forms
                return f"{self._versioned}:{state}:{arguments}"
        return f"{self._versioned}:{arguments}"

    def _bind(self, args: Args, kwargs: Kwargs) -> Args:
        """The call's arguments in parameter order, defaults included (as given, keywords
        tagged, for a function without a signature)."""
        if self.signature is None:
            return (*args, Tag("keywords", tuple(sorted(kwargs.items())))) if kwargs else args
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return tuple(bound.arguments.values())

    def _naming_defaults(self, values: Args) -> str:
        """The short form of ``values`` where each default stands as "the default": the
        function's identity holds the defaults."""
        named = tuple(
            _DEFAULT if v is d else v for v, d in zip(values, self._defaults, strict=False)
        )
        return short_form(named + values[len(self._defaults) :])

    def _state(self, identity: Identity) -> str:
        """The digest of what the identity reads at each call; said once when it cannot be
        keyed (then raised)."""
        try:
            return identity.state()
        except Exception as exc:
            self._warn(
                "a value its closure captured, or an object it is bound to, cannot be "
                f"keyed stably ({exc})"
            )
            raise

    def _warn(self, why: str) -> None:
        """Said once per decorated function: its calls run uncached on disk/Redis."""
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"opero: {self.name} runs uncached on the disk/Redis cache: {why}; give "
            "cache_key= to say what identifies a call",
            UserWarning,
            stacklevel=5,
        )

    def _user_key(self, result: object) -> Hashable:
        if self.memory:
            return (_USER, freeze(result))
        return f"{self._user_prefix}:{digest(result)}"

    def _memory_key(self, args: Args, kwargs: Kwargs) -> Hashable:
        head: tuple[_Identity, ...] = ()
        if self.keys_self and args:
            head, args = (_Identity(id(args[0])),), args[1:]
        key: tuple[object, ...] = (
            (*head, *args, KWD_MARK, *kwargs.items()) if kwargs else (*head, *args)
        )
        try:
            hash(key)
        except TypeError:  # unhashable arguments: their hashable form
            frozen = tuple(freeze(a) for a in args)
            tail = tuple((k, freeze(v)) for k, v in kwargs.items())
            key = (*head, *frozen, KWD_MARK, *tail) if kwargs else (*head, *frozen)
            hash(key)
        return key

    # ----- instances that own entries ---------------------------------------------------
    def track(self, args: Args, key: Hashable) -> None:
        """Remember that ``args[0]``'s entry ``key`` goes when that instance dies."""
        owner = args[0]
        ident = id(owner)
        with self._owner_lock:
            keys = self._owner_keys.get(ident)
            if keys is None:
                keys = self._owner_keys[ident] = set()
                try:
                    self._owners[ident] = weakref.ref(owner, self._owner_died(ident))
                except TypeError:  # not weak-referenceable: hold it, so its id stays unique
                    self._owners[ident] = owner
            if key not in keys:
                keys.add(key)
                self._tracked += 1
                if self._tracked > self._limit:
                    self._prune()

    def _prune(self) -> None:
        """Forget tracked keys the store has evicted, and owners left with none (under the
        owner lock): the bookkeeping stays within about twice the store's size."""
        live = self._live
        if live is None:
            return
        total = 0
        for ident in list(self._owner_keys):
            keys = {k for k in self._owner_keys[ident] if live(k)}
            if keys:
                self._owner_keys[ident] = keys
                total += len(keys)
            else:
                del self._owner_keys[ident]
                self._owners.pop(ident, None)
        self._tracked = total
        self._limit = max(self._limit, 2 * total + 16)

    def _owner_died(self, ident: int) -> Callable[[object], None]:
        def callback(_ref: object) -> None:
            with self._owner_lock:
                self._owners.pop(ident, None)
                keys = self._owner_keys.pop(ident, set())
                self._tracked -= len(keys)
            if self._discard is not None:
                self._discard(keys)

        return callback

    def forget(self) -> None:
        """Drop every owner (the cache was cleared)."""
        with self._owner_lock:
            self._owners.clear()
            self._owner_keys.clear()
            self._tracked = 0


class _Shape:
    """What keys need of a function's signature (None: a builtin without one, whose
    arguments are keyed as given)."""

    __slots__ = ("complete", "defaults", "first", "signature")

    def __init__(self, func: Callable[..., object]) -> None:
        try:
            signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            signature = None
        parameters = list(signature.parameters.values()) if signature is not None else []
        self.signature = signature
        #: the first parameter's name ("self": an instance method)
        self.first = parameters[0].name if parameters else None
        plain = signature is not None and all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters
        )
        #: the positional arguments that bind as given (-1: none do, bind them)
        self.complete = len(parameters) if plain else -1
        self.defaults = tuple(p.default for p in parameters)


class _Identity:
    """Stands for an instance in a memory key: equal only to itself's id."""

    __slots__ = ("ident",)

    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __hash__(self) -> int:
        return hash(self.ident)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.ident == self.ident

    def __repr__(self) -> str:
        return f"<instance id={self.ident:#x}>"
