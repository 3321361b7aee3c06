"""The hooks of attempts, waits, give-ups and breakers; ``stats().errors``."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

import opero
from opero import (
    AttemptDetails,
    BreakerDetails,
    GiveUpDetails,
    RejectedResultError,
    WaitDetails,
    operomap,
)


def double(x: int) -> int:
    return x * 2


class HTTPError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class Recorder:
    """``on_attempt`` returning a context manager that records what ``__exit__`` is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def __call__(self, details: AttemptDetails) -> Any:
        recorder = self

        class Around:
            def __enter__(self) -> None:
                recorder.seen.append(("enter", details.round, details.value, details.attempt))

            def __exit__(self, kind: Any, error: Any, tb: Any) -> bool:
                recorder.seen.append(("exit", kind.__name__ if kind else None))
                return True  # must not suppress anything

        return Around()


def test_every_attempt_is_wrapped_and_told_its_outcome(clock: Any) -> None:
    recorder = Recorder()
    answers = iter([ValueError("no"), "", "ok"])

    @opero.opero(retries=3, min_delay=0, on_attempt=recorder, retry_on_result=lambda r: r == "")
    def f(x: int) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert f(1) == "ok"
    assert recorder.seen == [
        ("enter", 1, None, 1),
        ("exit", "ValueError"),
        ("enter", 2, None, 2),
        ("exit", "RejectedResultError"),
        ("enter", 3, None, 3),
        ("exit", None),
    ]


def test_an_on_attempt_context_never_suppresses_and_a_raising_hook_is_ignored(clock: Any) -> None:
    def broken(details: AttemptDetails) -> None:
        raise RuntimeError("hook bug")

    @opero.opero(retries=0, on_attempt=Recorder(), on_wait=broken, on_give_up=broken)
    def f(x: int) -> int:
        raise KeyError(x)

    with pytest.raises(KeyError):
        f(1)

    @opero.opero(on_attempt=broken)
    def g(x: int) -> int:
        return x

    assert g(2) == 2


def test_waits_are_told_with_their_reason_and_length(clock: Any) -> None:
    waits: list[WaitDetails] = []

    @opero.opero(
        retries=1, min_delay=2, jitter=False, rate_limit=1, cache=False, on_wait=waits.append
    )
    def f(x: int) -> int:
        if x == 1:
            raise ValueError(x)
        return x

    with pytest.raises(ValueError):
        f(1)  # attempts at t=0 and, after the backoff, t=2
    f(2)  # the next admission is at t=3
    assert [(w.reason, w.seconds) for w in waits] == [("backoff", 2), ("rate_limit", 1.0)]
    assert f.stats().wait == 1.0  # (the backoff is not a wait before an attempt's admission)


def test_give_up_once_per_failed_call_never_for_arguments_that_do_not_fit(clock: Any) -> None:
    gave_up: list[GiveUpDetails] = []

    @opero.opero(retries=2, min_delay=0, arg_fallback="model", on_give_up=gave_up.append)
    def f(x: int, model: Any = ("a", "b")) -> int:
        raise ValueError(model)

    with pytest.raises(opero.AllFailedError) as info:
        f(1)
    assert [(g.error, g.attempts) for g in gave_up] == [(info.value, 6)]
    with pytest.raises(TypeError):
        f(1, 2, 3)  # type: ignore[call-arg]
    assert len(gave_up) == 1

    @opero.opero(retries=1, min_delay=0, retry_on_result=bool, on_give_up=gave_up.append)
    def g(x: int) -> int:
        return x

    with pytest.raises(RejectedResultError):
        g(1)
    assert isinstance(gave_up[-1].error, RejectedResultError) and gave_up[-1].attempts == 2
    assert all(dataclasses.is_dataclass(d) for d in gave_up)


def test_breakers_say_when_they_open_and_close(clock: Any) -> None:
    told: list[BreakerDetails] = []
    fail = [True]

    @opero.opero(retries=0, cache=False, cooldown=10, cooldown_after=2, on_breaker=told.append)
    def f(x: int) -> int:
        if fail[0]:
            raise ValueError(x)
        return x

    for _ in range(2):
        with pytest.raises(ValueError):
            f(1)
    assert [(b.value, b.opened) for b in told] == [(None, True)]
    clock.advance(11)
    fail[0] = False
    assert f(2) == 2
    assert [(b.value, b.opened) for b in told] == [(None, True), (None, False)]
    with pytest.raises(ValueError, match="on_breaker"):
        opero.opero(on_breaker=told.append)


def test_errors_are_counted_by_class_and_status(clock: Any) -> None:
    failures = iter([HTTPError(503), HTTPError(503), HTTPError(429), ValueError("x")])

    @opero.opero(retries=3, min_delay=0, cache=False)
    def f(x: int) -> int:
        raise next(failures)

    with pytest.raises(ValueError):
        f(1)
    assert dict(f.stats().errors) == {"HTTPError 503": 2, "HTTPError 429": 1, "ValueError": 1}


def test_hooks_of_a_process_map_run_in_the_caller() -> None:
    pids: list[int] = []

    def on_attempt(details: AttemptDetails) -> None:
        pids.append(os.getpid())

    mapped = operomap(
        mode="process", workers=2, progress=False, on_attempt=on_attempt, cache=False
    )(double)
    assert mapped([1, 2, 3]) == [2, 4, 6]
    assert pids == [os.getpid()] * 3


def test_coroutine_hooks_are_refused() -> None:
    async def hook(details: Any) -> None:
        return None

    for name in ("on_attempt", "on_wait", "on_give_up"):
        with pytest.raises(TypeError, match=name):
            opero.opero(**{name: hook})
