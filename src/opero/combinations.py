"""Combinations of options: an option given explicitly where the others leave it no effect
fails at decoration, naming both options.

The combinations are a table (:data:`RULES`): each :class:`Rule` says when it holds and
what it says; the first rule that holds is the error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["RULES", "Given", "Rule", "check_effect", "check_map", "check_stream_max"]


@dataclass(frozen=True, slots=True)
class Given:
    """The options of one decoration, as the rules read them."""

    #: the options the user gave explicitly
    given: Mapping[str, object]
    #: every option, checked, defaults included
    checked: Mapping[str, object]
    #: the ``Service`` objects ``rate_limit`` names, and those with a cooldown of their own
    services: list[object]
    cooling: list[object]

    @classmethod
    def of(cls, given: Mapping[str, object], checked: Mapping[str, object]) -> Given:
        services = _services(checked["rate_limit"])
        cooling = [s for s in services if getattr(s, "cooldown", None) is not None]
        return cls(given, checked, services, cooling)

    @property
    def backend(self) -> str:
        return str(self.checked["cache_backend"])

    def set(self, name: str) -> bool:
        """``name`` was given, and not as None."""
        return self.given.get(name) is not None


@dataclass(frozen=True, slots=True)
class Rule:
    """A combination refused: ``holds`` says when, ``says`` the message."""

    holds: Callable[[Given], bool]
    says: Callable[[Given], str]


def _no_cooldown(o: Given) -> bool:
    return o.checked["cooldown"] is None


def _no_fallback(o: Given) -> bool:
    return o.checked["arg_fallback"] is None


RULES: tuple[Rule, ...] = (
    Rule(
        lambda o: o.set("cache_dir") and o.backend != "disk",
        lambda o: (
            f"cache_dir={o.given['cache_dir']!r} has no effect with "
            f"cache_backend={o.backend!r}: cache_dir is the directory of cache_backend='disk'"
        ),
    ),
    Rule(
        lambda o: (
            o.set("cache_url") and "redis" not in (o.backend, o.checked["rate_limit_backend"])
        ),
        lambda o: (
            "cache_url has no effect unless cache_backend='redis' or "
            f"rate_limit_backend='redis' (got cache_backend={o.backend!r}, rate_limit_backend="
            f"{o.checked['rate_limit_backend']!r})"
        ),
    ),
    Rule(
        lambda o: "cache_serializer" in o.given and o.backend == "memory",
        lambda o: (
            f"cache_serializer={o.given['cache_serializer']!r} has no effect with "
            "cache_backend='memory' (memory keeps the objects themselves); it applies to "
            "'disk' and 'redis'"
        ),
    ),
    Rule(
        lambda o: "cooldown_after" in o.given and _no_cooldown(o),
        lambda o: (
            f"cooldown_after={o.given['cooldown_after']!r} has no effect without "
            "cooldown= (the seconds a failing value is skipped)"
        ),
    ),
    Rule(
        lambda o: o.set("on_breaker") and _no_cooldown(o) and not o.cooling,
        lambda o: "on_breaker has no effect without cooldown= (breakers open only with cooldowns)",
    ),
    Rule(
        lambda o: not _no_cooldown(o) and bool(o.cooling),
        lambda o: (
            f"cooldown={o.checked['cooldown']!r} and rate_limit={o.cooling[0]!r}: the "
            "Service has its own cooldown (its breakers); give cooldown to one of them, not both"
        ),
    ),
    Rule(
        lambda o: (
            "rate_limit_backend" in o.given
            and bool(o.services)
            and not isinstance(o.checked["rate_limit"], dict)
        ),
        lambda o: (
            f"rate_limit_backend={o.given['rate_limit_backend']!r} has no effect with "
            "rate_limit=Service(...): the Service says where its state lives (backend=)"
        ),
    ),
    Rule(
        lambda o: _no_fallback(o) and o.checked["fallback_strategy"] != "order",
        lambda o: (
            f"fallback_strategy={o.checked['fallback_strategy']!r} has no effect "
            "without arg_fallback= (it chooses among fallback values)"
        ),
    ),
    Rule(
        lambda o: _no_fallback(o) and isinstance(o.checked["rate_limit"], dict),
        lambda o: (
            "rate_limit given per fallback value (a mapping) has no effect without "
            "arg_fallback= (the parameter whose values it maps)"
        ),
    ),
    Rule(
        lambda o: "hedge_max" in o.given and o.checked["hedge"] is None,
        lambda o: (
            f"hedge_max={o.given['hedge_max']!r} has no effect without hedge= (the "
            "seconds after which a slow attempt gets a hedge)"
        ),
    ),
    Rule(
        lambda o: o.set("on_cache_hit") and not o.checked["cache"],
        lambda o: "on_cache_hit has no effect with cache=False: nothing is cached",
    ),
)


def check_effect(given: Mapping[str, object], checked: Mapping[str, object]) -> None:
    """Refuse an explicitly given option that cannot have an effect with the others."""
    options = Given.of(given, checked)
    for rule in RULES:
        if rule.holds(options):
            raise ValueError(rule.says(options))


def check_stream_max(given: Mapping[str, object], fn: object, stream: bool) -> None:
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


def check_map(checked: Mapping[str, object]) -> None:
    mode, executor = checked["mode"], checked["executor"]
    address, client = checked["address"], checked["client"]
    if (address is not None or client is not None) and (mode != "dask" or executor is not None):
        raise ValueError(
            f"address= and client= go with mode='dask' (and no executor=), got mode={mode!r}"
            + (" and an executor" if executor is not None else "")
        )
    if address is not None and client is not None:
        raise ValueError("give address= or client=, not both")
