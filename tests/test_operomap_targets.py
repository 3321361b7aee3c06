"""Bound methods, partials and callable objects work in process modes (pickled whole,
so ``self`` travels) or fail at decoration with a TypeError; an item that cannot be pickled
fails that item with an OperoError, not retried."""

from __future__ import annotations

import functools
import threading

import pytest

from opero import OperomapError, operomap
from opero.errors import OperoError, UnpicklableError
from tests.map_helpers import Scaler, add, identity


@pytest.mark.timeout(120)
def test_bound_method_keeps_self_in_worker_processes() -> None:
    mapped = operomap(mode="process", workers=2, progress=False, cache=False)(Scaler(10).scale)
    assert mapped([1, 2, 3]) == [10, 20, 30]  # the first build returned wrong values here


@pytest.mark.timeout(120)
def test_partial_and_callable_object_in_worker_processes() -> None:
    plus5 = operomap(mode="process", workers=2, progress=False)(functools.partial(add, 5))
    assert plus5([1, 2]) == [6, 7]
    bump = operomap(mode="process", workers=2, progress=False)(Scaler(100))
    assert bump([1, 2]) == [101, 102]


class Unpicklable:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def method(self, x: int) -> int:
        return x


def test_unpicklable_bound_object_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        operomap(mode="process", progress=False)(Unpicklable().method)
    with pytest.raises(TypeError, match="cannot be pickled"):
        operomap(mode="process", progress=False)(functools.partial(add, threading.Lock()))


@pytest.mark.timeout(120)
def test_unpicklable_item_fails_that_item_with_an_opero_error_not_retried() -> None:
    mapped = operomap(mode="process", workers=2, progress=False, cache=False, retries=3)(identity)
    items: list[object] = [1, threading.Lock(), 3]
    with pytest.raises(OperomapError) as info:
        mapped(items)
    results = info.value.results
    assert results[0] == 1 and results[2] == 3
    error = results[1]
    assert isinstance(error, UnpicklableError) and isinstance(error, OperoError)
    assert "cannot be pickled" in str(error)
    assert any("item 1" in note for note in error.__notes__)
    assert not any("attempt" in note for note in error.__notes__)  # a single attempt


SHARED = ValueError("one object for every item")


def _fails_shared(x: int) -> int:
    raise SHARED


def _fails_fresh(x: int) -> int:
    raise ValueError(f"item {x}")


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_items_that_share_a_failure_get_their_own_copies(mode: str) -> None:
    """Equal keys share one computation; each failed item gets its own exception copy, noted
    with its own index only."""
    mapped = operomap(mode=mode, workers=4, progress=False, retries=0)(_fails_fresh)
    with pytest.raises(OperomapError) as info:
        mapped([7, 7, 7, 8])
    errors = info.value.results
    assert len({id(e) for e in errors}) == 4
    for index, error in enumerate(errors):
        item_notes = [n for n in error.__notes__ if n.startswith("operomap item")]
        assert item_notes == [f"operomap item {index}"]
    assert [str(e) for e in errors] == ["item 7", "item 7", "item 7", "item 8"]


def test_one_exception_object_raised_for_many_items() -> None:
    mapped = operomap(mode="thread", workers=2, progress=False, retries=0, cache=False)(
        _fails_shared
    )
    for _ in range(3):
        with pytest.raises(OperomapError) as info:
            mapped([1, 2, 3])
        for index, error in enumerate(info.value.results):
            item_notes = [n for n in error.__notes__ if n.startswith("operomap item")]
            assert item_notes == [f"operomap item {index}"]


def _slow_identity(x: int) -> int:
    import time

    time.sleep(0.05)
    return x


def test_thread_workers_start_lazily() -> None:
    """Never more workers than items in flight: 3 items on workers=500 start 3 threads."""
    seen: list[int] = []

    def count_threads(x: int) -> int:
        seen.append(sum(1 for t in threading.enumerate() if t.name.startswith("opero:")))
        return _slow_identity(x)

    mapped = operomap(mode="thread", workers=500, progress=False, cache=False)(count_threads)
    assert mapped([1, 2, 3]) == [1, 2, 3]
    assert max(seen) <= 3
    many = operomap(mode="thread", workers=4, progress=False, cache=False)(_slow_identity)
    import time

    start = time.monotonic()
    assert many(range(8)) == list(range(8))
    assert time.monotonic() - start < 0.05 * 8 * 0.75  # still spread over the 4 workers


@pytest.mark.timeout(120)
def test_a_process_map_inside_a_process_worker() -> None:
    from tests.map_helpers import nested_sum

    outer = operomap(mode="process", workers=2, progress=False, cache=False)(nested_sum)
    assert outer([3, 4]) == [5, 14]  # the first build: an internal AssertionError
