"""Read by mypy (tests/test_cache_control.py), never executed: ``cache_delete`` and
``cache_contains`` take the function's own parameters and return bool, sync or async."""

from __future__ import annotations

from typing import assert_type

from opero import opero


@opero
def bare(x: int, *, name: str = "a") -> list[str]:
    return [name] * x


@opero(cache_backend="disk")
async def fetch(url: str) -> bytes:
    return url.encode()


assert_type(bare.cache_delete(2, name="b"), bool)
assert_type(bare.cache_contains(2), bool)
assert_type(fetch.cache_contains("u"), bool)  # a plain method on an async function
assert_type(fetch.cache_delete(url="u"), bool)
bare.cache_delete("wrong")  # type: ignore[arg-type]
fetch.cache_contains()  # type: ignore[call-arg]
