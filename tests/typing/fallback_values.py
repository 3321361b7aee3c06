"""Read by mypy and pyright (tests/test_fallback_values.py), never executed: fallback(...)
is typed as one value of its values' type, where the parameter's type is checked."""

from __future__ import annotations

from typing import assert_type

from opero import fallback, opero, operomap


@opero(arg_fallback="model")
def ask(prompt: str, model: str = fallback("gpt-big", "gpt-small")) -> str:
    assert_type(model, str)  # the body sees one value
    return prompt + model


@opero(arg_fallback="key", cache=False)
async def charge(amount: int, *, key: str = fallback("primary", "backup")) -> int:
    return amount


@operomap(arg_fallback="model", mode="process")
def summarize(doc: str, model: str = fallback("big", "small")) -> str:
    return doc + model


assert_type(fallback("a", "b"), str)
assert_type(fallback(1, 2), int)
assert_type(ask("hi"), str)
assert_type(ask("hi", model=fallback("a", "b")), str)
assert_type(ask("hi", fallback("a", "b")), str)
assert_type(ask("hi", model="a"), str)
assert_type(summarize(["doc"]), list[str])
assert_type(summarize(["doc"], model=fallback("a", "b")), list[str])


async def use() -> None:
    assert_type(await charge(10, key=fallback("k1", "k2")), int)


# values of the wrong type are reported, as a default and at a call site
ask("hi", model=fallback(1, 2))  # type: ignore[arg-type]
ask("hi", fallback(1, 2))  # type: ignore[arg-type]
ask("hi", model=fallback("a", 2))  # type: ignore[arg-type]


@opero(arg_fallback="model")
def wrong_default(model: str = fallback(1, 2)) -> str:  # type: ignore[assignment]
    return model

