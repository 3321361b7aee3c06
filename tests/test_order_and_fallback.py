"""The order of operations (cache -> retry -> arg_fallback -> rate limit -> call), parameter
fallback, and the errors raised when every attempt fails."""

from __future__ import annotations

import pytest

from opero import AllFailedError, OperoError, opero
from opero.core.clock import CLOCK


def test_call_sequence_a_b_sleep_a_b(clock, monkeypatch) -> None:
    events: list[str] = []

    def sleep(seconds: float) -> None:
        events.append("<sleep>")
        clock.sleep(seconds)

    monkeypatch.setattr(CLOCK, "sleep", sleep)

    @opero(cache=False, retries=1, arg_fallback="model")
    def ask(prompt: str, model: list[str] | str = ["a", "b"]) -> str:
        events.append(model)  # type: ignore[arg-type]
        raise ConnectionError(model)

    with pytest.raises(AllFailedError) as info:
        ask("hi")
    assert events == ["a", "b", "<sleep>", "a", "b"]
    group = info.value
    assert isinstance(group, OperoError)
    assert isinstance(group, ExceptionGroup)
    assert [str(e) for e in group.exceptions] == ["a", "b", "a", "b"]
    assert [e.__notes__ for e in group.exceptions] == [
        ["round 1/2, model='a'"],
        ["round 1/2, model='b'"],
        ["round 2/2, model='a'"],
        ["round 2/2, model='b'"],
    ]


def test_rate_limit_gates_every_attempt_of_every_value(clock) -> None:
    starts: list[tuple[str, float]] = []

    @opero(cache=False, retries=1, arg_fallback="model", rate_limit=2, jitter=False, min_delay=0)
    def ask(model: list[str] = ["a", "b"]) -> str:
        starts.append((model, clock.now))  # type: ignore[arg-type]
        raise ConnectionError

    with pytest.raises(AllFailedError):
        ask()
    times = [t for _, t in starts]
    assert [m for m, _ in starts] == ["a", "b", "a", "b"]
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [0.5, 0.5, 0.5]


def test_cache_hit_makes_no_attempt_and_takes_no_slot(clock) -> None:
    n = 0

    @opero(rate_limit=1)
    def f(x: int) -> int:
        nonlocal n
        n += 1
        return x

    assert f(1) == 1
    assert f(1) == 1
    assert f(1) == 1
    assert n == 1
    assert clock.sleeps == []  # the second admission would have waited 1 s
    f(2)
    assert clock.sleeps == [1.0]


def test_only_first_success_cached_under_original_key(clock) -> None:
    calls: list[str] = []

    @opero(arg_fallback="model")
    def ask(prompt: str, model: list[str] | str = ["a", "b", "c"]) -> str:
        calls.append(model)  # type: ignore[arg-type]
        if model == "a":
            raise ConnectionError
        return f"{prompt}:{model}"

    assert ask("p") == "p:b"
    assert ask("p") == "p:b"
    assert calls == ["a", "b"]
    # the value that succeeded was not stored under its own key
    assert ask("p", model="b") == "p:b"
    assert calls == ["a", "b", "b"]


async def test_async_call_sequence(clock, monkeypatch) -> None:
    events: list[str] = []

    async def async_sleep(seconds: float) -> None:
        events.append("<sleep>")

    monkeypatch.setattr(CLOCK, "async_sleep", async_sleep)

    @opero(cache=False, retries=1, arg_fallback="model")
    async def ask(model: list[str] = ["a", "b"]) -> str:
        events.append(model)  # type: ignore[arg-type]
        raise ConnectionError

    with pytest.raises(AllFailedError):
        await ask()
    assert events == ["a", "b", "<sleep>", "a", "b"]


# ----- arg_fallback sources ---------------------------------------------------------------


def recorder(**opts: object):  # type: ignore[no-untyped-def]
    seen: list[object] = []

    @opero(cache=False, retries=0, arg_fallback="model", **opts)  # type: ignore[arg-type]
    def ask(prompt: str, model: object = ("x", "y")) -> str:
        seen.append(model)
        if model != "good":
            raise ConnectionError(model)
        return f"{prompt}@{model}"

    return ask, seen


def test_fallback_by_keyword() -> None:
    ask, seen = recorder()
    assert ask("p", model=["bad", "good", "never"]) == "p@good"
    assert seen == ["bad", "good"]


def test_fallback_by_position() -> None:
    ask, seen = recorder()
    assert ask("p", ["bad", "good"]) == "p@good"
    assert seen == ["bad", "good"]


def test_fallback_from_default() -> None:
    ask, seen = recorder()
    with pytest.raises(AllFailedError):
        ask("p")
    assert seen == ["x", "y"]


def test_str_is_one_value() -> None:
    ask, seen = recorder()
    assert ask("p", model="good") == "p@good"
    with pytest.raises(ConnectionError):  # single value: the original exception, no group
        ask("p", model="bad")
    assert seen == ["good", "bad"]


def test_empty_list_raises_at_call_time() -> None:
    ask, seen = recorder()
    with pytest.raises(ValueError, match="'model' got an empty list"):
        ask("p", model=[])
    assert seen == []


def test_keyword_only_and_positional_only_parameters() -> None:
    seen: list[str] = []

    @opero(cache=False, retries=0, arg_fallback="key")
    def call(url: str, /, *, key: list[str] | str) -> str:
        seen.append(key)  # type: ignore[arg-type]
        if key != "k2":
            raise PermissionError
        return url + key

    assert call("u:", key=["k1", "k2"]) == "u:k2"
    assert seen == ["k1", "k2"]


def test_non_retryable_error_stops_fallback() -> None:
    seen: list[str] = []

    @opero(cache=False, retries=2, arg_fallback="model", retry_on=ConnectionError)
    def ask(model: list[str] = ["a", "b"]) -> str:
        seen.append(model)  # type: ignore[arg-type]
        raise KeyError(model)

    with pytest.raises(KeyError):
        ask()
    assert seen == ["a"]


def test_fallback_hook_and_retry_hook(clock) -> None:
    from opero.core.hooks import FallbackDetails, RetryDetails

    got: list[object] = []

    @opero(
        cache=False,
        retries=1,
        arg_fallback="model",
        jitter=False,
        min_delay=0.5,
        on_retry=got.append,
        on_fallback=got.append,
    )
    def ask(model: list[str] = ["a", "b"]) -> str:
        raise ConnectionError(model)

    with pytest.raises(AllFailedError):
        ask()
    kinds = [type(g).__name__ for g in got]
    assert kinds == ["FallbackDetails", "RetryDetails", "FallbackDetails"]
    first = got[0]
    assert isinstance(first, FallbackDetails)
    assert (first.param, first.failed_value, first.next_value, first.round) == (
        "model",
        "a",
        "b",
        1,
    )
    retry = got[1]
    assert isinstance(retry, RetryDetails)
    assert (retry.round, retry.rounds, retry.delay) == (1, 2, 0.5)


def test_fallback_passes_only_what_the_caller_gave() -> None:
    """Fallback: a decorator below @opero that injects an argument keeps working."""
    import functools

    seen: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def inject_client(fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((args, dict(kwargs)))
            return fn(*args, client="injected", **kwargs)  # TypeError if given twice

        return wrapper

    @opero(arg_fallback="model", cache=False, retries=0)
    @inject_client
    def ask(prompt: str, model: object = ("a", "b"), client: str | None = None) -> str:
        if model == "a":
            raise ValueError("a is down")
        return f"{prompt}:{model}:{client}"

    assert ask("p") == "p:b:injected"
    assert seen == [(("p",), {"model": "a"}), (("p",), {"model": "b"})]
    seen.clear()
    assert ask("p", ["a", "b"]) == "p:b:injected"  # by position: replaced in place
    assert seen == [(("p", "a"), {}), (("p", "b"), {})]
    seen.clear()
    assert ask(prompt="p", model=["a", "b"]) == "p:b:injected"
    assert seen == [((), {"prompt": "p", "model": "a"}), ((), {"prompt": "p", "model": "b"})]


def test_fallback_positional_only_default() -> None:
    @opero(arg_fallback="model", cache=False, retries=0)
    def ask(prompt: str, model: object = ("a", "b"), /) -> str:
        if model == "a":
            raise ValueError("down")
        return f"{prompt}:{model}"

    assert ask("p") == "p:b"


def test_all_failed_message_counts_the_rounds_actually_tried() -> None:
    """A permanent error (a 401 for every value) ends the call after one round: the message
    says one round ran, not the six that were allowed."""

    class Unauthorized(Exception):
        status_code = 401

    calls: list[str] = []

    @opero(arg_fallback="model", retries=5, cache=False, min_delay=0)
    def ask(prompt: str, model: list[str] | str = ["big", "small"]) -> str:
        calls.append(str(model))
        raise Unauthorized("bad key")

    with pytest.raises(AllFailedError) as info:
        ask("hi")
    assert calls == ["big", "small"]
    assert "all 2 attempts failed (1 of 6 round(s) x 2 value(s) of model)" in str(info.value)
