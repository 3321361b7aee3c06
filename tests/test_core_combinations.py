"""Every refused combination of options: each one, given alone, fails at decoration with
its whole message (the order of the checks decides which one speaks when several hold)."""

from __future__ import annotations

from typing import Any

import pytest

from opero import Service, opero, operomap


def fn(x: int, key: str = "a") -> int:
    return x


SERVICE = Service()
COOLING = Service(cooldown=5)

REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"cache_dir": "/tmp/x"},
        "cache_dir='/tmp/x' has no effect with cache_backend='memory': cache_dir is the "
        "directory of cache_backend='disk'",
    ),
    (
        {"cache_url": "redis://localhost:6379/0"},
        "cache_url has no effect unless cache_backend='redis' or rate_limit_backend='redis' "
        "(got cache_backend='memory', rate_limit_backend='memory')",
    ),
    (
        {"cache_serializer": "json"},
        "cache_serializer='json' has no effect with cache_backend='memory' (memory keeps the "
        "objects themselves); it applies to 'disk' and 'redis'",
    ),
    (
        {"cooldown_after": 2},
        "cooldown_after=2 has no effect without cooldown= (the seconds a failing value is skipped)",
    ),
    (
        {"on_breaker": print},
        "on_breaker has no effect without cooldown= (breakers open only with cooldowns)",
    ),
    (
        {"cooldown": 5.0, "rate_limit": COOLING},
        f"cooldown=5.0 and rate_limit={COOLING!r}: the Service has its own cooldown (its "
        "breakers); give cooldown to one of them, not both",
    ),
    (
        {"rate_limit_backend": "memory", "rate_limit": SERVICE},
        "rate_limit_backend='memory' has no effect with rate_limit=Service(...): the Service "
        "says where its state lives (backend=)",
    ),
    (
        {"fallback_strategy": "spread"},
        "fallback_strategy='spread' has no effect without arg_fallback= (it chooses among "
        "fallback values)",
    ),
    (
        {"rate_limit": {"a": "5/s"}},
        "rate_limit given per fallback value (a mapping) has no effect without arg_fallback= "
        "(the parameter whose values it maps)",
    ),
    (
        {"hedge_max": 2},
        "hedge_max=2 has no effect without hedge= (the seconds after which a slow attempt "
        "gets a hedge)",
    ),
    (
        {"cache": False, "on_cache_hit": print},
        "on_cache_hit has no effect with cache=False: nothing is cached",
    ),
]


@pytest.mark.parametrize(("options", "message"), REFUSED)
def test_a_combination_without_effect_is_refused_with_its_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        opero(**options)(fn)
    assert str(caught.value) == message


@pytest.mark.parametrize(("options", "message"), REFUSED)
def test_operomap_refuses_the_same_combinations(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        operomap(**options)(fn)
    assert str(caught.value) == message


ACCEPTED: list[dict[str, Any]] = [
    {"cache_dir": None},
    {"cache_backend": "disk", "cache_dir": "/tmp/x"},
    {"cache_backend": "redis", "cache_url": "redis://localhost:1/0"},
    {"rate_limit_backend": "redis", "rate_limit": 5, "cache_url": "redis://localhost:1/0"},
    {"cache_backend": "disk", "cache_dir": "/tmp/x", "cache_serializer": "json"},
    {"cooldown": 5, "cooldown_after": 2},
    {"cooldown": 5, "on_breaker": print},
    {"rate_limit": COOLING, "on_breaker": print},
    {"rate_limit": SERVICE},
    {"rate_limit": {"a": SERVICE}, "arg_fallback": "key", "rate_limit_backend": "memory"},
    {"arg_fallback": "key", "fallback_strategy": "spread"},
    {"hedge": 0.5, "hedge_max": 2},
    {"on_cache_hit": print},
]


@pytest.mark.parametrize("options", ACCEPTED)
def test_combinations_with_an_effect_are_accepted(options: dict[str, Any]) -> None:
    assert opero(**options)(fn).__wrapped__ is fn


def test_the_first_refused_combination_speaks_when_several_hold() -> None:
    with pytest.raises(ValueError, match="^cache_dir="):
        opero(cache_dir="/tmp/x", hedge_max=2, cooldown_after=2)(fn)
    with pytest.raises(ValueError, match="^cooldown_after="):
        opero(hedge_max=2, cooldown_after=2)(fn)


def test_address_and_client_go_with_dask() -> None:
    with pytest.raises(ValueError) as caught:
        operomap(address="tcp://x:1")(fn)
    assert str(caught.value) == (
        "address= and client= go with mode='dask' (and no executor=), got mode='thread'"
    )
    with pytest.raises(ValueError, match="give address= or client=, not both"):
        operomap(mode="dask", address="tcp://x:1", client=object())(fn)
