"""Combinations of options: an option given explicitly where the others leave it no effect
fails at decoration, naming both options."""

from collections.abc import Mapping
from typing import Any

__all__ = ["check_effect", "check_map", "check_stream_max"]


def check_effect(given: Mapping[str, Any], checked: dict[str, Any]) -> None:
    """Refuse an explicitly given option that cannot have an effect with the others."""
    backend = checked["cache_backend"]
    if given.get("cache_dir") is not None and backend != "disk":
        raise ValueError(
            f"cache_dir={given['cache_dir']!r} has no effect with cache_backend={backend!r}: "
            "cache_dir is the directory of cache_backend='disk'"
        )
    if given.get("cache_url") is not None and "redis" not in (
        backend,
        checked["rate_limit_backend"],
    ):
        raise ValueError(
            "cache_url has no effect unless cache_backend='redis' or rate_limit_backend='redis' "
            f"(got cache_backend={backend!r}, rate_limit_backend="
            f"{checked['rate_limit_backend']!r})"
        )
    if "cache_serializer" in given and backend == "memory":
        raise ValueError(
            f"cache_serializer={given['cache_serializer']!r} has no effect with "
            "cache_backend='memory' (memory keeps the objects themselves); it applies to "
            "'disk' and 'redis'"
        )
    if "cooldown_after" in given and checked["cooldown"] is None:
        raise ValueError(
            f"cooldown_after={given['cooldown_after']!r} has no effect without cooldown= "
            "(the seconds a failing value is skipped)"
        )
    services = _services(checked["rate_limit"])
    held = [s for s in services if getattr(s, "cooldown", None) is not None]
    if given.get("on_breaker") is not None and checked["cooldown"] is None and not held:
        raise ValueError(
            "on_breaker has no effect without cooldown= (breakers open only with cooldowns)"
        )
    if checked["cooldown"] is not None and held:
        raise ValueError(
            f"cooldown={checked['cooldown']!r} and rate_limit={held[0]!r}: the Service has "
            "its own cooldown (its breakers); give cooldown to one of them, not both"
        )
    if "rate_limit_backend" in given and services and not isinstance(checked["rate_limit"], dict):
        raise ValueError(
            f"rate_limit_backend={given['rate_limit_backend']!r} has no effect with "
            "rate_limit=Service(...): the Service says where its state lives (backend=)"
        )
    if checked["arg_fallback"] is None:
        if checked["fallback_strategy"] != "order":
            raise ValueError(
                f"fallback_strategy={checked['fallback_strategy']!r} has no effect without "
                "arg_fallback= (it chooses among fallback values)"
            )
        if isinstance(checked["rate_limit"], dict):
            raise ValueError(
                "rate_limit given per fallback value (a mapping) has no effect without "
                "arg_fallback= (the parameter whose values it maps)"
            )
    if "hedge_max" in given and checked["hedge"] is None:
        raise ValueError(
            f"hedge_max={given['hedge_max']!r} has no effect without hedge= (the seconds "
            "after which a slow attempt gets a hedge)"
        )
    if given.get("on_cache_hit") is not None and not checked["cache"]:
        raise ValueError("on_cache_hit has no effect with cache=False: nothing is cached")


def check_stream_max(given: Mapping[str, Any], fn: object, stream: bool) -> None:
    """``cache_stream_max`` given for a function that is not a generator function."""
    if "cache_stream_max" in given and not stream:
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise ValueError(
            f"cache_stream_max={given['cache_stream_max']!r} has no effect on {name!r}: "
            "cache_stream_max needs a generator function (or async generator function), "
            "whose items are cached as a list"
        )


def _services(pacing: object) -> list[object]:
    """The ``Service`` objects a checked ``rate_limit`` names (known by their
    ``cooldown_after`` attribute: this module comes before the service module)."""
    found = pacing.values() if isinstance(pacing, Mapping) else [pacing]
    return [p for p in found if hasattr(p, "cooldown_after")]


def check_map(checked: dict[str, Any]) -> None:
    mode, executor = checked["mode"], checked["executor"]
    address, client = checked["address"], checked["client"]
    if (address is not None or client is not None) and (mode != "dask" or executor is not None):
        raise ValueError(
            f"address= and client= go with mode='dask' (and no executor=), got mode={mode!r}"
            + (" and an executor" if executor is not None else "")
        )
    if address is not None and client is not None:
        raise ValueError("give address= or client=, not both")
