"""Streams and the cache (sync): the items are stored when the stream ends normally and a hit
replays them from a new generator; an abandoned, failing or too long stream is not stored;
no single-flight; ``with_options``, ``cache_delete`` and stats keep working."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from opero import opero


def counted(n: int = 3) -> tuple[list[int], Any]:
    runs: list[int] = []

    def gen(x: int) -> Iterator[int]:
        runs.append(x)
        yield from range(x, x + n)

    return runs, gen


def test_a_finished_stream_is_stored_and_replayed_by_a_new_generator() -> None:
    runs, gen = counted()
    f = opero(gen)
    first = f(1)
    assert list(first) == [1, 2, 3]
    assert f.cache_contains(1)
    again = f(1)
    assert again is not first and inspect.isgenerator(again)
    assert list(again) == [1, 2, 3]
    assert list(f(1)) == [1, 2, 3]
    assert runs == [1]
    s = f.stats()
    assert (s.calls, s.cache_hits, s.attempts) == (3, 2, 1)
    assert f.cache_info().hits == 2 and f.cache_info().misses == 1


def test_a_replay_can_be_abandoned_and_replayed_again() -> None:
    runs, gen = counted()
    f = opero(gen)
    list(f(1))
    replay = f(1)
    assert next(replay) == 1
    replay.close()
    assert list(f(1)) == [1, 2, 3] and runs == [1]


def test_an_abandoned_stream_is_not_stored() -> None:
    runs, gen = counted()
    f = opero(gen)
    stream = f(1)
    assert next(stream) == 1
    assert next(stream) == 2
    stream.close()
    assert not f.cache_contains(1)
    assert list(f(1)) == [1, 2, 3]
    assert runs == [1, 1]
    assert list(f(1)) == [1, 2, 3] and runs == [1, 1]


def test_a_stream_consumed_to_its_last_item_but_not_its_end_is_not_stored() -> None:
    _runs, gen = counted(2)
    f = opero(gen)
    a, b = f(1), f(1)
    assert [next(a), next(a)] == [1, 2]  # the caller never asked past the last item
    a.close()
    assert not f.cache_contains(1)
    assert list(b) == [1, 2] and f.cache_contains(1)


def test_a_stream_longer_than_cache_stream_max_is_passed_through() -> None:
    runs, gen = counted(4)
    f = opero(cache_stream_max=3)(gen)
    assert list(f(1)) == [1, 2, 3, 4]
    assert not f.cache_contains(1)
    assert list(f(1)) == [1, 2, 3, 4] and runs == [1, 1]
    runs, gen = counted(3)
    g = opero(cache_stream_max=3)(gen)
    assert list(g(1)) == [1, 2, 3] and g.cache_contains(1)


def test_the_default_cache_stream_max_is_ten_thousand() -> None:
    _runs, gen = counted(10_001)
    f = opero(gen)
    assert len(list(f(0))) == 10_001 and not f.cache_contains(0)
    _runs, gen = counted(10_000)
    g = opero(gen)
    assert len(list(g(0))) == 10_000 and g.cache_contains(0)


def test_a_stream_without_items_is_stored_as_no_items() -> None:
    runs, gen = counted(0)
    f = opero(gen)
    assert list(f(1)) == []
    assert f.cache_contains(1)
    assert list(f(1)) == [] and runs == [1]


def test_concurrent_misses_each_stream_on_their_own() -> None:
    both = threading.Barrier(2, timeout=10)

    @opero
    def gen(x: int) -> Iterator[int]:
        both.wait()  # with single-flight the second caller would wait for the first
        yield x

    out: list[list[int]] = []
    threads = [threading.Thread(target=lambda: out.append(list(gen(1)))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == [[1], [1]]
    assert gen.stats().attempts == 2


def test_with_options_and_cache_control_keep_working() -> None:
    runs, gen = counted()
    f = opero(gen)
    list(f(1))
    assert list(f.with_options(cache=False)(1)) == [1, 2, 3] and runs == [1, 1]
    assert list(f.with_options(cache="refresh")(1)) == [1, 2, 3] and runs == [1, 1, 1]
    assert list(f.with_options(retries=0)(1)) == [1, 2, 3] and runs == [1, 1, 1]  # a hit
    assert f.with_options(retries=0) is f.with_options(retries=0)
    assert f.cache_delete(1) is True
    assert not f.cache_contains(1)
    list(f(1))
    f.cache_clear()
    assert not f.cache_contains(1)
    with pytest.raises(TypeError, match="with_options"):
        f.with_options(workers=2)
    assert f.stats().calls == 5


def test_refresh_stores_the_new_items() -> None:
    version = [0]

    @opero
    def gen(x: int) -> Iterator[int]:
        yield version[0]

    assert list(gen(1)) == [0]
    version[0] = 1
    assert list(gen.with_options(cache="refresh")(1)) == [1]
    assert list(gen(1)) == [1]


def test_keys_by_arguments_and_cache_key() -> None:
    runs, gen = counted()
    f = opero(cache_key=lambda x: x % 2)(gen)
    assert list(f(1)) == [1, 2, 3]
    assert list(f(3)) == [1, 2, 3]  # same key
    assert runs == [1]
    g = opero(cache_key=lambda x: None)(counted()[1])
    assert list(g(1)) == [1, 2, 3] and not g.cache_contains(1)


def test_methods_stream_too() -> None:
    class Client:
        def __init__(self) -> None:
            self.runs = 0

        @opero
        def words(self, n: int) -> Iterator[str]:
            self.runs += 1
            yield from ["w"] * n

    c = Client()
    assert list(c.words(2)) == ["w", "w"] and list(c.words(2)) == ["w", "w"]
    assert c.runs == 1


def test_on_cache_hit_is_told_of_a_replay() -> None:
    hits: list[Any] = []
    _runs, gen = counted()
    f = opero(on_cache_hit=hits.append)(gen)
    list(f(1))
    assert list(f(1)) == [1, 2, 3]
    assert len(hits) == 1
