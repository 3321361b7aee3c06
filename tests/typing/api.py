"""Read by mypy and pyright (tests/test_decorator.py), never executed: the decorators keep
types, and every option is typed (a wrong or misspelt option needs its ignore comment)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, assert_type

from opero import OperoFunction, opero, operomap

P = ParamSpec("P")
R = TypeVar("R")


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
coro: Coroutine[Any, Any, bytes] = fetch("u")
coro.close()
as_callable: Callable[[int], list[str]] = bare


def unwrapped(f: OperoFunction[P, R]) -> Callable[P, R]:
    return f.__wrapped__


assert_type(unwrapped(bare)(2), list[str])
bare.cache_clear()


async def use() -> None:
    assert_type(await fetch("u"), bytes)


bare("wrong")  # type: ignore[arg-type]
configured()  # type: ignore[call-arg]
fetch(1).close()  # type: ignore[arg-type]


# every option is typed, through the one options table (Unpack[OperoOptions])
@opero(cache_ttl=None, retry_on=(ValueError, KeyError), rate_limit=2.5, cache_backend="disk")
def typed_options(x: int) -> int:
    return x


assert_type(typed_options(1), int)
opero(retries="3")  # type: ignore[call-overload]
opero(cache_backend=1)  # type: ignore[call-overload]
opero(retires=3)  # type: ignore[call-overload]


@operomap(mode="process", workers=2, ordered=False, retries=1)
def per_item(x: int) -> str:
    return str(x)


assert_type(per_item([1, 2]), list[str])
operomap(workers="2")  # type: ignore[call-overload]


class Client:
    @opero
    def ask(self, prompt: str, *, model: str = "a") -> str:
        return prompt

    @classmethod
    @opero(retries=1)
    def build(cls, name: str) -> int:
        return len(name)

    @opero(cache=False)
    async def fetch(self, url: str) -> bytes:
        return url.encode()


client = Client()
assert_type(client.ask("hi"), str)
assert_type(client.ask("hi", model="b"), str)
assert_type(Client.build("x"), int)
assert_type(client.build("x"), int)
client.ask.cache_clear()
client.ask(1)  # type: ignore[arg-type]
Client.build(1)  # type: ignore[arg-type]


async def use_method() -> None:
    assert_type(await client.fetch("u"), bytes)
