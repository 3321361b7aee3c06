"""Retry decisions with the real clients (openai, anthropic, httpx, requests, aiohttp) against a
local server that speaks their wire formats: every delay source, every status class,
``x-should-retry``, the fallback walk after a permanent error, the predicate form of
``retry_on``, and SDK exceptions from process workers caught by their own class."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opero import opero, operomap
from opero.core.signals import http_status, retry_after_of
from tests import sdk_clients as sdk
from tests.http_server import ScriptedServer, error_body

CLIENTS = ["openai", "anthropic", "httpx", "requests", "aiohttp"]


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _fresh(server: ScriptedServer) -> Iterator[None]:
    server.reset()
    yield
    server.reset()


def _failure(client: str, server: ScriptedServer) -> BaseException:
    try:
        sdk.call(client, server.url)
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


def _in_30s() -> str:
    return (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")


DELAYS: list[tuple[str, int, dict[str, str], float | None]] = [
    ("Retry-After seconds", 429, {"Retry-After": "2"}, 2.0),
    ("retry-after-ms first", 429, {"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
    ("Retry-After on a 503", 503, {"Retry-After": "4"}, 4.0),
    (
        "OpenAI reset of the exhausted requests limit (as late as its last digit allows)",
        429,
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"},
        361.0,
    ),
    (
        "OpenAI reset of the exhausted tokens limit only",
        429,
        {
            "x-ratelimit-remaining-requests": "5",
            "x-ratelimit-reset-requests": "9s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "250ms",
        },
        0.251,
    ),
    ("unreadable values are skipped", 429, {"retry-after-ms": "-1", "Retry-After": "soon"}, None),
    (
        "reset headers count only on a 429",
        503,
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"},
        None,
    ),
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("case", "status", "headers", "expected"), DELAYS, ids=[d[0] for d in DELAYS]
)
def test_every_delay_source(
    server: ScriptedServer,
    client: str,
    case: str,
    status: int,
    headers: dict[str, str],
    expected: float | None,
) -> None:
    server.script(sdk.PATHS[client], (status, headers, error_body(status)))
    exc = _failure(client, server)
    assert http_status(exc) == status
    got = retry_after_of(exc)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("client", CLIENTS)
def test_anthropic_reset_time(server: ScriptedServer, client: str) -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": _in_30s(),
    }
    server.script(sdk.PATHS[client], (429, headers, error_body(429)))
    got = retry_after_of(_failure(client, server))
    assert got is not None and 28 <= got <= 30.001  # microseconds given: as late as that


STATUSES: list[tuple[str, list[tuple[int, dict[str, str]]], int, bool]] = [
    # (case, answers before a 200, requests made, succeeds)
    ("404 is permanent: one attempt", [(404, {})], 1, False),
    ("401 is permanent", [(401, {})], 1, False),
    ("422 is permanent", [(422, {})], 1, False),
    ("500s are retried", [(500, {}), (502, {})], 3, True),
    ("429 is retried", [(429, {})], 2, True),
    ("408, 409 and 425 are retried", [(408, {}), (409, {}), (425, {})], 4, True),
    ("x-should-retry: false wins over a 500", [(500, {"x-should-retry": "false"})], 1, False),
    ("x-should-retry: true wins over a 400", [(400, {"x-should-retry": "true"})], 2, True),
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("case", "answers", "requests", "ok"), STATUSES, ids=[s[0] for s in STATUSES]
)
def test_status_classes(
    server: ScriptedServer,
    clock: Any,
    client: str,
    case: str,
    answers: list[tuple[int, dict[str, str]]],
    requests: int,
    ok: bool,
) -> None:
    path = sdk.PATHS[client]
    server.script(path, *((s, h, error_body(s)) for s, h in answers))
    if client == "aiohttp":

        @opero(cache=False, retries=3, min_delay=0.1)
        async def ask_async(url: str) -> str:
            return await sdk.aiohttp_post(url)

        def ask(url: str) -> str:
            return asyncio.run(ask_async(url))
    else:
        ask = opero(cache=False, retries=3, min_delay=0.1)(sdk.SYNC[client])
    if ok:
        assert ask(server.url) == "hi"
    else:
        with pytest.raises(Exception) as info:
            ask(server.url)
        assert http_status(info.value) == answers[0][0]
    assert server.count(path) == requests


@pytest.mark.parametrize("client", ["openai", "httpx", "requests"])
def test_a_permanent_error_ends_one_fallback_value_not_the_others(
    server: ScriptedServer, clock: Any, client: str
) -> None:
    """Model "gone" answers 404 (no more rounds for it); "busy" answers 500, then 200."""
    busy = iter([500])

    def decide(path: str, body: Any) -> Any:
        if body["model"] == "gone":
            return 404, {}, error_body(404)
        status = next(busy, 200)
        return (status, {}, error_body(status)) if status != 200 else (200, {}, None)

    def answer(path: str, body: Any) -> Any:
        status, headers, payload = decide(path, body)
        return status, headers, payload if payload is not None else sdk_chat()

    server.decide = answer
    call = sdk.SYNC[client]

    @opero(cache=False, retries=3, min_delay=0.1, arg_fallback="model")
    def ask(url: str, model: Any = ("gone", "busy")) -> str:
        return call(url, model)

    assert ask(server.url) == "hi"
    models = [body["model"] for _, _, body in server.requests]
    assert models == ["gone", "busy", "busy"]  # round 2 skips the 404'd value


def sdk_chat() -> dict[str, Any]:
    from tests.http_server import CHAT

    return CHAT


def test_every_value_permanently_failing_raises_at_once(server: ScriptedServer, clock: Any) -> None:
    from opero import AllFailedError

    server.defaults["/v1/chat/completions"] = (404, {}, error_body(404))

    @opero(cache=False, retries=3, min_delay=0.1, arg_fallback="model")
    def ask(url: str, model: Any = ("a", "b")) -> str:
        return sdk.openai_chat(url, model)

    with pytest.raises(AllFailedError) as info:
        ask(server.url)
    assert len(info.value.exceptions) == 2 and server.count() == 2
    assert clock.sleeps == []  # no backoff: nothing left to retry


def test_predicate_retry_on_decides_alone(server: ScriptedServer, clock: Any) -> None:
    import openai

    path = "/v1/chat/completions"
    server.script(path, (503, {}, error_body(503)), (500, {}, error_body(500)))

    @opero(
        cache=False,
        retries=3,
        min_delay=0.1,
        retry_on=lambda e: getattr(e, "status_code", None) == 503,
    )
    def ask(url: str) -> str:
        return sdk.openai_chat(url)

    with pytest.raises(openai.InternalServerError):
        ask(server.url)
    assert server.count(path) == 2  # the 503 was retried, the 500 was not

    server.reset()
    server.script(path, (404, {}, error_body(404)))

    @opero(cache=False, retries=2, min_delay=0.1, retry_on=lambda e: True)
    def always(url: str) -> str:
        return sdk.openai_chat(url)

    assert always(server.url) == "hi"  # a predicate decides alone: even a 404 is retried
    assert server.count(path) == 2


@pytest.mark.timeout(120)
def test_sdk_exceptions_from_process_workers_keep_their_class(server: ScriptedServer) -> None:
    import anthropic
    import openai

    server.defaults["/v1/chat/completions"] = (404, {}, error_body(404))
    server.defaults["/v1/messages"] = (
        429,
        {"retry-after": "7", "x-should-retry": "false"},
        error_body(429),
    )
    chat = operomap(
        mode="process", workers=2, retries=0, cache=False, progress=False, return_exceptions=True
    )(sdk.openai_chat)
    out = chat([server.url, server.url])
    assert all(type(e) is openai.NotFoundError for e in out), out
    assert out[0].status_code == 404 and out[0].response.status_code == 404
    try:
        raise out[0]
    except openai.NotFoundError:
        pass  # caught by its own class

    messages = operomap(
        mode="process", workers=1, retries=2, cache=False, progress=False, return_exceptions=True
    )(sdk.anthropic_message)
    (err,) = messages([server.url])
    assert type(err) is anthropic.RateLimitError
    assert retry_after_of(err) == 7  # read again in the caller from the stand-in's headers
    assert server.count("/v1/messages") == 1  # x-should-retry: false, honoured in the caller


def test_client_errors_are_not_the_builtin_connection_and_timeout_errors() -> None:
    """Why the README warns: retry_on=(ConnectionError, TimeoutError) catches none of these."""
    import socket

    import httpx
    import openai
    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    failures: list[BaseException] = []
    for call in (
        lambda: httpx.get(closed, timeout=2),
        lambda: requests.get(closed, timeout=2),
        lambda: openai.OpenAI(base_url=closed, api_key="k", max_retries=0).models.list(),
    ):
        try:
            call()
        except Exception as exc:
            failures.append(exc)
    assert len(failures) == 3
    assert not any(isinstance(e, ConnectionError | TimeoutError) for e in failures), failures
