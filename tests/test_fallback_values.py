"""``opero.fallback(...)``: the fallback values of the ``arg_fallback`` parameter, written so
that type checkers see one value. At run time they are tried in order like a tuple, wherever
they come from (a default, a keyword, a position), and cross to process workers."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from opero import AllFailedError, fallback, opero, operomap
from opero.policy import Fallbacks

ROOT = Path(__file__).resolve().parent.parent


def answer(prompt: str, model: str = fallback("down", "up")) -> str:
    """Module level, so process workers can import it: "down" always fails."""
    if model == "down":
        raise ConnectionError(f"{model} is down")
    return f"{prompt}:{model}:{type(model).__name__}:{os.getpid()}"


# ----- the values ---------------------------------------------------------------------
def test_fallback_with_no_values_is_refused() -> None:
    with pytest.raises(ValueError, match=r"fallback\(\) needs at least one value"):
        fallback()


def test_repr_reads_as_the_call_that_made_it() -> None:
    assert repr(fallback("a", "b")) == "fallback('a', 'b')"
    assert repr(fallback("a")) == "fallback('a')"
    assert repr(fallback(1, None)) == "fallback(1, None)"


def test_values_pickle_as_themselves() -> None:
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        values = pickle.loads(pickle.dumps(fallback("a", "b"), protocol))
        assert type(values) is Fallbacks
        assert values == ("a", "b")
        assert repr(values) == "fallback('a', 'b')"


# ----- where the values come from -----------------------------------------------------
def test_default_keyword_and_position_each_try_the_values_in_order() -> None:
    seen: list[object] = []

    @opero(cache=False, retries=0, arg_fallback="model")
    def ask(prompt: str, model: str = fallback("gpt-big", "gpt-small")) -> str:
        seen.append(model)
        if model != "gpt-small" and not model.startswith("ok"):
            raise ConnectionError(model)
        return f"{prompt}/{model}"

    assert ask("hi") == "hi/gpt-small"
    assert seen == ["gpt-big", "gpt-small"]
    seen.clear()
    assert ask("hi", model=fallback("x", "ok-kw")) == "hi/ok-kw"
    assert seen == ["x", "ok-kw"]
    seen.clear()
    assert ask("hi", fallback("y", "z", "ok-pos")) == "hi/ok-pos"
    assert seen == ["y", "z", "ok-pos"]
    seen.clear()
    assert ask("hi", model="ok-single") == "hi/ok-single"  # a plain value: no fallback
    assert seen == ["ok-single"]
    assert all(type(m) is str for m in seen)


def test_a_method_and_a_keyword_only_parameter() -> None:
    class Client:
        @opero(cache=False, retries=0, arg_fallback="key")
        def call(self, *, key: str = fallback("k1", "k2")) -> str:
            if key == "k1":
                raise PermissionError(key)
            return key

    assert Client().call() == "k2"
    assert Client().call(key=fallback("k1", "k1", "k3")) == "k3"


async def test_async_function_walks_the_values() -> None:
    seen: list[str] = []

    @opero(cache=False, retries=0, arg_fallback="model")
    async def ask(model: str = fallback("a", "b")) -> str:
        seen.append(model)
        if model == "a":
            raise TimeoutError(model)
        return model

    assert await ask() == "b"
    assert seen == ["a", "b"]


def test_every_round_failed_gives_the_attempt_records(clock) -> None:
    @opero(cache=False, retries=1, arg_fallback="model")
    def ask(prompt: str, model: str = fallback("a", "b")) -> str:
        raise ConnectionError(f"{model} failed")

    with pytest.raises(AllFailedError) as info:
        ask("hi")
    error = info.value
    records = [(a.round, a.value, str(a.exception)) for a in error.attempts]
    assert records == [
        (1, "a", "a failed"),
        (1, "b", "b failed"),
        (2, "a", "a failed"),
        (2, "b", "b failed"),
    ]
    assert all(type(a.value) is str for a in error.attempts)
    assert [e.__notes__ for e in error.exceptions] == [
        ["round 1/2, model='a'"],
        ["round 1/2, model='b'"],
        ["round 2/2, model='a'"],
        ["round 2/2, model='b'"],
    ]
    assert "fallback(" not in str(error)


def test_a_single_value_is_still_a_fallback_list(clock) -> None:
    @opero(cache=False, retries=0, arg_fallback="model")
    def ask(model: str = "plain") -> str:
        raise ConnectionError(model)

    with pytest.raises(ConnectionError):  # a plain value: the original exception
        ask()
    with pytest.raises(AllFailedError) as info:  # fallback("only"): a list of one value
        ask(model=fallback("only"))
    assert [a.value for a in info.value.attempts] == ["only"]


# ----- process workers ----------------------------------------------------------------
def test_process_map_expands_in_the_caller_and_workers_get_one_value() -> None:
    tried: list[object] = []
    mapped = operomap(
        mode="process",
        workers=2,
        arg_fallback="model",
        retries=0,
        cache=False,
        progress=False,
        on_fallback=lambda details: tried.append(details),
    )(answer)
    parent = os.getpid()
    results = mapped(["p1", "p2", "p3"])
    for prompt, result in zip(["p1", "p2", "p3"], results, strict=True):
        got, model, kind, pid = result.split(":")
        assert (got, model, kind) == (prompt, "up", "str")
        assert int(pid) != parent
    assert len(tried) == 3  # each item moved from "down" to "up" in the caller
    given = mapped(["q"], model=fallback("down", "down", "alt"))
    assert given[0].split(":")[:3] == ["q", "alt", "str"]


# ----- cache keys ---------------------------------------------------------------------
RUNS: list[str] = []  # a global: a closure over a changing list would change disk keys


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_equal_fallback_values_share_a_cache_entry(backend: str, tmp_path: Path) -> None:
    RUNS.clear()
    where = {"cache_dir": tmp_path} if backend == "disk" else {}

    @opero(cache_backend=backend, arg_fallback="model", retries=0, **where)  # type: ignore[call-overload]
    def ask(prompt: str, model: str = fallback("a", "b")) -> str:
        RUNS.append(model)
        return f"{prompt}/{model}"

    assert ask("hi", model=fallback("a", "b")) == "hi/a"
    assert ask("hi", model=fallback("a", "b")) == "hi/a"
    assert RUNS == ["a"]
    # a plain tuple of the same values means the same thing: the same entry
    assert ask("hi", model=("a", "b")) == "hi/a"  # type: ignore[arg-type]
    assert RUNS == ["a"]
    # other values, or the same values in another order, are another call
    assert ask("hi", model=fallback("b", "a")) == "hi/b"
    assert ask("hi", model=fallback("a", "c")) == "hi/a"
    assert RUNS == ["a", "b", "a"]
    ask("hi")
    ask("hi")
    assert len(RUNS) == (4 if backend == "memory" else 3)  # disk keys apply defaults


def test_disk_keys_of_fallback_values_are_stable_across_processes(tmp_path: Path) -> None:
    """A disk entry stored by one process is found by another (no hash(), no id())."""
    script = f"""
import sys
from opero import fallback, opero

@opero(cache_backend="disk", cache_dir={str(tmp_path)!r}, arg_fallback="model", retries=0)
def ask(prompt: str, model: str = fallback("a", "b")) -> str:
    print("computed", flush=True)
    return prompt + model

print(ask("hi", model=fallback("x", "y")), ask("hi"), ask("hi", model=("a", "b")))
"""
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2)
    ]
    assert outputs[0] == "computed\ncomputed\nhix hia hia\n"
    assert outputs[1] == "hix hia hia\n"
