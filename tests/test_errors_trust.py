"""Errors: AllFailedError.attempts, notes never added twice, and server delays
that cannot be read never replace the user's exception."""

from __future__ import annotations

import pytest

from opero import AllFailedError, opero
from opero.core.retry import retry_after_of
from opero.errors import Attempt
from opero.testing import set_testing


def test_all_failed_error_lists_attempts() -> None:
    calls: list[str] = []

    @opero(retries=1, arg_fallback="model", cache=False)
    def ask(prompt: str, model: list[str] = ["a", "b"]) -> str:
        calls.append(model)  # type: ignore[arg-type]
        raise ValueError(f"{model} down")

    with set_testing(), pytest.raises(AllFailedError) as info:
        ask("hi")
    attempts = info.value.attempts
    assert [(a.round, a.value) for a in attempts] == [(1, "a"), (1, "b"), (2, "a"), (2, "b")]
    assert all(isinstance(a, Attempt) for a in attempts)
    assert [a.exception for a in attempts] == list(info.value.exceptions)
    assert str(attempts[3].exception) == "b down"


SHARED = ConnectionError("the same object every time")


def test_shared_exception_notes_do_not_pile_up() -> None:
    @opero(retries=2, cache=False)
    def down() -> None:
        raise SHARED

    @opero(retries=1, arg_fallback="key", cache=False)
    def keyed(key: tuple[str, ...] = ("k1", "k2")) -> None:
        raise SHARED

    with set_testing():
        for _ in range(5):
            with pytest.raises(ConnectionError):
                down()
            with pytest.raises(AllFailedError):
                keyed()
    notes = SHARED.__notes__
    assert len(notes) == len(set(notes))
    assert len(notes) <= 2 + 4  # two "failed earlier" notes and the four round/value notes


class Headers(dict):
    pass


class Response:
    def __init__(self, headers: object) -> None:
        self.headers = headers


class HTTPError(Exception):
    def __init__(self, headers: object) -> None:
        super().__init__("503")
        self.response = Response(headers)


class RaisingResponse(Exception):
    @property
    def response(self) -> object:
        raise RuntimeError("no response on this error")  # httpx does this


class RaisingRetryAfter(Exception):
    @property
    def retry_after(self) -> float:
        raise KeyError("nope")


class BrokenHeaders:
    def get(self, name: str) -> object:
        raise TypeError("headers cannot be read")


@pytest.mark.parametrize(
    "exc",
    [
        HTTPError({"Retry-After": b"\xff\xfe"}),
        HTTPError({"Retry-After": "-5"}),
        HTTPError({"Retry-After": "soon"}),
        HTTPError({"Retry-After": "nan"}),
        HTTPError(BrokenHeaders()),
        RaisingResponse(),
        RaisingRetryAfter(),
    ],
)
def test_unreadable_server_delay_is_ignored(exc: Exception) -> None:
    assert retry_after_of(exc) is None
    sleeps: list[float] = []
    from opero.core.clock import CLOCK

    real = CLOCK.sleep
    CLOCK.sleep = sleeps.append  # type: ignore[assignment]
    try:

        @opero(retries=1, cache=False, jitter=False, min_delay=0.5)
        def fails() -> None:
            raise exc

        with pytest.raises(type(exc)) as info:
            fails()
    finally:
        CLOCK.sleep = real  # type: ignore[method-assign]
    assert info.value is exc  # the user's exception, never replaced
    assert sleeps == [0.5]  # the normal backoff applied


def test_negative_retry_after_attribute_ignored() -> None:
    exc = Exception("x")
    exc.retry_after = -3  # type: ignore[attr-defined]
    assert retry_after_of(exc) is None
