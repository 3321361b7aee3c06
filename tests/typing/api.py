"""Read by mypy (tests/test_decorator.py), never executed: the decorators keep types."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from opero import OperoFunction, opero


@opero
def bare(x: int, *, name: str = "a") -> list[str]:
    return [name] * x


@opero(retries=2, arg_fallback="model")
def configured(prompt: str, model: str | list[str] = "a") -> str:
    return prompt


@opero(cache=False)
async def fetch(url: str) -> bytes:
    return url.encode()


assert_type(bare(2), list[str])
assert_type(bare(2, name="b"), list[str])
assert_type(configured("p"), str)
assert_type(configured("p", model=["a", "b"]), str)
coro = fetch("u")
_ = assert_type(coro, Coroutine[Any, Any, bytes])
coro.close()
as_callable: Callable[[int], list[str]] = bare
as_protocol: OperoFunction[[int], list[str]] = bare
bare.cache_clear()


async def use() -> None:
    assert_type(await fetch("u"), bytes)


bare("wrong")  # type: ignore[arg-type]
configured()  # type: ignore[call-arg]
fetch(1).close()  # type: ignore[arg-type]
