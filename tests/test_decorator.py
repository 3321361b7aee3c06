"""@opero: sync stays sync, async stays async, metadata kept, generators refused, bare use."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import opero as opero_pkg
from opero import opero


def test_sync_metadata_preserved() -> None:
    def fetch(url: str, *, retries_hint: int = 2) -> bytes:
        """Fetch a URL."""
        return url.encode()

    wrapped = opero(fetch)
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch a URL."
    assert wrapped.__qualname__.endswith("fetch")
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert wrapped.__annotations__ == fetch.__annotations__
    assert wrapped.__wrapped__ is fetch
    assert wrapped("u") == b"u"


async def test_async_stays_coroutine_function() -> None:
    @opero()
    async def fetch(url: str) -> str:
        """Async fetch."""
        await asyncio.sleep(0)
        return url

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__doc__ == "Async fetch."
    assert list(inspect.signature(fetch).parameters) == ["url"]
    assert await fetch("x") == "x"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"cache": False},
        {"cache": False, "rate_limit": 5},
        {"arg_fallback": "x"},
        {"timeout": 5},
    ],
)
async def test_every_wrapper_variant_keeps_kind(options: dict[str, object]) -> None:
    async def a(x: int = 1) -> int:
        return x

    def s(x: int = 1) -> int:
        return x

    wa = opero(**options)(a)  # type: ignore[arg-type]
    ws = opero(**options)(s)  # type: ignore[arg-type]
    assert inspect.iscoroutinefunction(wa)
    assert not inspect.iscoroutinefunction(ws)
    assert await wa(3) == 3
    assert ws(3) == 3


def test_generators_are_streams() -> None:  # refused before; tests/test_streams*.py
    def gen() -> object:
        yield 1

    async def agen() -> object:
        yield 1

    assert inspect.isgeneratorfunction(opero(gen))
    assert inspect.isasyncgenfunction(opero()(agen))


def test_not_callable_refused() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        opero()(42)  # type: ignore[call-overload]


def test_bare_and_called_forms() -> None:
    @opero
    def a() -> int:
        return 1

    @opero()
    def b() -> int:
        return 2

    assert (a(), b()) == (1, 2)


def test_public_api() -> None:
    assert set(opero_pkg.__all__) >= {
        "opero",
        "OperoError",
        "AllFailedError",
        "OperomapError",
        "OperoBackendWarning",
    }
    for name in opero_pkg.__all__:
        assert hasattr(opero_pkg, name)
    assert issubclass(opero_pkg.AllFailedError, opero_pkg.OperoError)
    assert issubclass(opero_pkg.OperomapError, ExceptionGroup)
    assert issubclass(opero_pkg.OperoBackendWarning, Warning)
