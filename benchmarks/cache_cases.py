"""P15 and P16 (docs/performance.md): keys that are correct and still cheap.

P15: a memory hit whose argument is a dict of 1 000 str -> int items, against a cachetools
hit keyed by ``blake2b(pickle.dumps(arg))``. P16: a disk hit with one int argument, against
``diskcache.Cache.get`` + ``pickle.loads`` of the same value.
"""

from __future__ import annotations

import hashlib
import pickle
import tempfile
import threading
import timeit
from typing import Any

from opero import opero

__all__ = ["p15", "p16"]


def _best_ns(call: Any, arg: Any, number: int, repeat: int) -> float:
    timer = timeit.Timer("f(a)", globals={"f": call, "a": arg})
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def p15(number: int, repeat: int, Row: Any) -> tuple[list[Any], dict[str, float]]:
    import cachetools

    def size(d: dict[str, int]) -> int:
        return len(d)

    def pickled_key(d: dict[str, int]) -> bytes:
        return hashlib.blake2b(pickle.dumps(d)).digest()

    arg = {f"key-{i}": i for i in range(1_000)}
    ours = opero()(size)
    peer = cachetools.cached(
        cachetools.TTLCache(maxsize=10_000, ttl=3600), key=pickled_key, lock=threading.Lock()
    )(size)
    ours(arg)
    peer(arg)
    n = max(1, number // 100)
    figures = {
        "opero": _best_ns(ours, arg, n, repeat),
        "cachetools+blake2b(pickle)": _best_ns(peer, arg, n, repeat),
    }
    o, p = figures["opero"], figures["cachetools+blake2b(pickle)"]
    rows = [
        Row(
            "P15 memory hit, dict of 1 000 items",
            o,
            "cachetools+blake2b(pickle)",
            p,
            "<= 1",
            o <= p,
        )
    ]
    return rows, figures


def p16(number: int, repeat: int, Row: Any) -> tuple[list[Any], dict[str, float]]:
    import diskcache

    def double(x: int) -> int:
        return x * 2

    directory = tempfile.mkdtemp(prefix="opero-p16-")
    ours = opero(cache_backend="disk", cache_dir=directory)(double)
    ours(1)
    peer_cache = diskcache.Cache(tempfile.mkdtemp(prefix="opero-p16-peer-"))
    peer_cache.set("double:1", pickle.dumps(2, protocol=5))

    def peer(x: int) -> int:
        return pickle.loads(peer_cache.get(f"double:{x}"))  # type: ignore[no-any-return]

    n = max(1, number // 20)
    figures = {
        "opero": _best_ns(ours, 1, n, repeat),
        "diskcache.get+pickle.loads": _best_ns(peer, 1, n, repeat),
    }
    o, p = figures["opero"], figures["diskcache.get+pickle.loads"]
    rows = [
        Row("P16 disk hit, one int", o, "diskcache.get+pickle.loads", p, "<= 1.3", o <= 1.3 * p)
    ]
    return rows, figures
