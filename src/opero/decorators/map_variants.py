"""``f.with_options(...)`` on a map: the same map with ``cache`` (True, False, "refresh"),
``retries``, ``deadline``, ``timeout`` or ``retry_on_result`` changed for its items, sharing
the function's cache, limits, pauses, breakers, retry budget and stats."""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from opero.cache.singleflight import SingleFlight
from opero.cache.store import MISS
from opero.core.deadline import AMBIENT
from opero.core.judge import Judge
from opero.decorators.variants import checked

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.maps.map_driver import MapSpec

__all__ = ["map_variants", "runner_for"]

R = TypeVar("R")


class Refreshing:
    """A cache layer for ``cache="refresh"``: every lookup misses, every computed value is
    stored, and no item waits on a computation that started before it."""

    def __init__(self, layer: CacheLayer) -> None:
        self._layer = layer
        self.flights = SingleFlight()
        self.fast = False  # (no inlined memory lookups either)

    def get(self, key: Hashable, *, quiet: bool = False) -> Any:
        return MISS

    async def aget(self, key: Hashable, *, quiet: bool = False) -> Any:
        return MISS

    async def fill_async(
        self,
        key: Hashable,
        run: Callable[[tuple[Any, ...], dict[str, Any]], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        return await self._layer.refresh_async(key, run, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)


def map_variants(fn: Callable[..., Any], spec: MapSpec, wrap: Callable[[MapSpec], Any]) -> Any:
    """The ``with_options`` method of the map ``spec`` of ``fn`` (``wrap`` makes a map
    function of a spec)."""
    made: dict[frozenset[tuple[str, Any]], Any] = {}

    def with_options(**overrides: Any) -> Any:
        """The map with ``cache`` (True, False, "refresh"), ``retries``, ``deadline``,
        ``timeout`` or ``retry_on_result`` changed for its items; it shares this map's
        cache, limits, pauses, breakers, retry budget and stats."""
        try:
            key: frozenset[tuple[str, Any]] | None = frozenset(overrides.items())
            found = made.get(key)  # type: ignore[arg-type]
        except TypeError:
            key, found = None, None
        if found is not None:
            return found
        judge, layer = spec.judge, spec.layer
        cache, options = checked(judge, layer, overrides)
        variant = copy.copy(spec)
        variant.judge = Judge(fn, options, judge.name, judge.services, judge.holds)  # type: ignore[arg-type]
        if cache is False:
            variant.layer = None
        elif cache == "refresh":
            assert layer is not None
            variant.layer = Refreshing(layer)  # type: ignore[assignment]
        mapped = wrap(variant)
        if key is not None:
            made[key] = mapped
        return mapped

    return with_options


def runner_for(
    fn: Callable[..., Any], spec: MapSpec, runner: R, make: Callable[[MapSpec], R]
) -> Callable[[], tuple[R, object]]:
    """Which runner a call of the map uses, and the OpenTelemetry context its items' spans
    are children of (None: not traced): with ``telemetry=True``, ``runner`` and the context
    current at the call; with None, while :func:`opero.telemetry.enable` is in effect, a
    twin with telemetry on (``make`` makes a runner of a spec; made once)."""
    setting = spec.judge.options["telemetry"]
    twin: list[R] = []
    ambient = AMBIENT

    def pick() -> tuple[R, object]:
        if not (setting or (setting is None and ambient.traced)):
            return runner, None
        from opero.core.telemetry import current

        if setting:
            return runner, current()
        if not twin:
            judge = spec.judge
            traced = copy.copy(spec)
            options = {**judge.options, "telemetry": True}
            traced.judge = Judge(fn, options, judge.name, judge.services, judge.holds)  # type: ignore[arg-type]
            twin.append(make(traced))
        return twin[0], current()

    return pick
