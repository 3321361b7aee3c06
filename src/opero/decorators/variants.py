"""``f.with_options(...)``: the same decorated function with some options changed for the
calls made through it, sharing the function's cache, limits, pauses, breakers, retry
budget and stats. A variant is built once per set of overrides and kept."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from opero.core.judge import Judge
from opero.decorators.observe import attach
from opero.decorators.wrappers import async_wrapper, refresh_wrapper, sync_wrapper, within_deadline
from opero.options import OPTIONS

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer

__all__ = ["PER_CALL", "CallOptions", "assemble", "variants"]


class CallOptions(TypedDict, total=False):
    """What ``with_options`` may change."""

    cache: bool | Literal["refresh"]
    retries: int
    deadline: float | None
    timeout: float | None
    retry_on_result: Callable[[Any], bool] | None


PER_CALL = tuple(CallOptions.__annotations__)
CACHE_MODES = (True, False, "refresh")


def variants(fn: Callable[..., Any], judge: Judge, layer: CacheLayer | None) -> Any:
    """The ``with_options`` method of the function ``fn`` decorated as ``judge``/``layer``."""
    made: dict[frozenset[tuple[str, Any]], Any] = {}

    def with_options(**overrides: Any) -> Any:
        """The function with some options changed for the calls made through what this
        returns: ``cache`` (True, False: neither read nor write, "refresh": do not read,
        run, store), ``retries``, ``deadline``, ``timeout``, ``retry_on_result``. It shares
        this function's cache, limits, pauses, breakers, retry budget and stats."""
        try:
            key = frozenset(overrides.items())
            found = made.get(key)
        except TypeError:  # an unhashable value: checked (and refused) below
            key, found = None, None
        if found is not None:
            return found
        variant = _variant(fn, judge, layer, overrides)
        if key is not None:
            made[key] = variant
        return variant

    return with_options


def checked(
    judge: Judge, layer: object, overrides: dict[str, Any]
) -> tuple[bool | str, dict[str, Any]]:
    """The cache mode and the options of a variant with ``overrides`` (checked)."""
    unknown = sorted(set(overrides) - set(PER_CALL))
    if unknown:
        raise TypeError(
            f"with_options() does not take {', '.join(unknown)}; it takes {', '.join(PER_CALL)}"
        )
    cache = overrides.get("cache", layer is not None)
    if cache not in CACHE_MODES or cache.__class__ not in (bool, str):
        raise ValueError(f"cache must be True, False or 'refresh', got {cache!r}")
    if cache and layer is None:
        raise ValueError(
            f"cache={cache!r}: {judge.name} was decorated with cache=False; it has no cache"
        )
    options = dict(judge.options)
    for name, value in overrides.items():
        if name != "cache":
            options[name] = OPTIONS[name].check(name, value)
    return cache, options


def _variant(
    fn: Callable[..., Any], judge: Judge, layer: CacheLayer | None, overrides: dict[str, Any]
) -> Any:
    cache, options = checked(judge, layer, overrides)
    inner = Judge(fn, options, judge.name, judge.services, judge.holds)  # type: ignore[arg-type]
    wrapper = assemble(fn, inner, layer, cache)
    functools.update_wrapper(wrapper, fn)
    attach(wrapper, inner, layer)
    wrapper.with_options = variants(fn, inner, layer)
    return wrapper


def assemble(
    fn: Callable[..., Any], judge: Judge, layer: CacheLayer | None, cache: bool | str
) -> Any:
    """The wrapper of ``judge`` with the cache mode ``cache`` (True, False, "refresh"):
    its deadline, and its telemetry (``telemetry=True``: every call a span; None: a twin
    with telemetry on, made on first use, takes the calls while telemetry is enabled)."""
    setting = judge.options["telemetry"]
    twin: Callable[..., Any] | None = None
    if setting is None:
        twin = _Twin(fn, judge, layer, cache)
    used = layer if cache else None
    if cache == "refresh":
        assert layer is not None
        wrapper = refresh_wrapper(judge, layer, twin)
    elif judge.is_async:
        wrapper = async_wrapper(judge, used, twin)
    else:
        wrapper = sync_wrapper(judge, used, twin)
    if judge.deadline is not None:
        wrapper = within_deadline(wrapper, judge.deadline, judge.is_async)
    if setting:
        from opero.core.telemetry import traced

        wrapper = traced(wrapper, judge.name, judge.is_async, cache is True)
    return wrapper


class _Twin:
    """A function left at ``telemetry=None`` with telemetry on: built on first use; it
    shares the function's cache, limits, pauses, budget and stats."""

    __slots__ = ("args", "made")

    def __init__(
        self, fn: Callable[..., Any], judge: Judge, layer: CacheLayer | None, cache: bool | str
    ) -> None:
        self.args = (fn, judge, layer, cache)
        self.made: Callable[..., Any] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        made = self.made
        if made is None:
            fn, judge, layer, cache = self.args
            options = {**judge.options, "telemetry": True}
            twin = Judge(fn, options, judge.name, judge.services, judge.holds)  # type: ignore[arg-type]
            made = self.made = assemble(fn, twin, layer, cache)
        return made(*args, **kwargs)
