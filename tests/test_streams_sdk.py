"""Streams with the official ``openai`` SDK (``stream=True``) against a local server sending
real Server-Sent Events: a request failing before its first chunk is retried, a finished
stream is replayed from the cache without a request, a stream cut after its first chunk
fails unchanged and is not stored; many abandoned streams leave no threads or files open."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from opero import opero
from tests.sse_server import WORDS, Reply, SSEServer

MESSAGES = [{"role": "user", "content": "hi"}]
TEXT = "".join(WORDS)


@pytest.fixture(scope="module")
def _server() -> Iterator[SSEServer]:
    server = SSEServer().start()
    yield server
    server.stop()


@pytest.fixture
def sse(_server: SSEServer) -> SSEServer:
    with _server.lock:
        _server.replies.clear()
        _server.default = Reply()
        _server.requests = 0
        _server.bodies.clear()
    return _server


def text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks)


def make_chat(url: str, **options: Any) -> Any:
    client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)

    @opero(retries=2, min_delay=0.01, **options)
    def chat(prompt: str, model: str = "m") -> Iterator[Any]:
        yield from client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], stream=True
        )

    return chat


@pytest.mark.parametrize("status", [500, 429])
def test_a_failed_request_is_retried_and_the_stream_replayed(sse: SSEServer, status: int) -> None:
    sse.script(Reply(status=status, retry_after="0"))
    chat = make_chat(sse.url)
    assert text(list(chat("hi"))) == TEXT
    assert sse.count() == 2
    assert sse.bodies[-1]["stream"] is True
    assert text(list(chat("hi"))) == TEXT  # replayed: no request
    assert sse.count() == 2
    s = chat.stats()
    assert (s.calls, s.cache_hits, s.attempts, s.failures) == (2, 1, 2, 1)


def test_a_stream_replayed_from_disk(sse: SSEServer, tmp_path: Path) -> None:
    key = lambda prompt, model="m": (prompt, model)  # noqa: E731 - the client is no key
    chat = make_chat(sse.url, cache_backend="disk", cache_dir=tmp_path, cache_key=key)
    first = list(chat("disk"))
    assert text(first) == TEXT and sse.count() == 1
    again = list(chat("disk"))
    assert text(again) == TEXT and sse.count() == 1
    assert type(again[0]) is type(first[0])


def test_a_stream_cut_after_its_first_chunk_fails_unchanged(sse: SSEServer) -> None:
    sse.script(Reply(cut_after=2))
    chat = make_chat(sse.url)
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in chat("cut"):
            seen.append(chunk)
    assert text(seen) == "Hello there" and sse.count() == 1  # not retried
    assert not chat.cache_contains("cut")
    assert text(list(chat("cut"))) == TEXT and sse.count() == 2


def test_timeout_waits_for_the_first_chunk_only(sse: SSEServer) -> None:
    sse.script(Reply(first_delay=3.0))
    sse.default = Reply(gap=0.15)  # the whole stream takes longer than the timeout
    chat = make_chat(sse.url, timeout=1.0)
    started = time.monotonic()
    assert text(list(chat("slow"))) == TEXT
    assert time.monotonic() - started < 2.9
    assert sse.count() == 2 and chat.stats().errors.get("TimeoutError") == 1


async def test_async_sdk_stream_is_retried_and_replayed(sse: SSEServer) -> None:
    sse.script(Reply(status=503))
    client = openai.AsyncOpenAI(base_url=sse.url + "/v1", api_key="k", max_retries=0)

    @opero(retries=2, min_delay=0.01)
    async def chat(prompt: str) -> AsyncIterator[Any]:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for chunk in stream:
            yield chunk

    assert text([c async for c in chat("hi")]) == TEXT
    assert sse.count() == 2
    assert text([c async for c in chat("hi")]) == TEXT
    assert sse.count() == 2
    await client.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settled(limit: int) -> int:
    deadline = time.monotonic() + 10
    while (now := _fds()) > limit and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    return now


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_many_abandoned_streams_leave_nothing_behind(sse: SSEServer) -> None:
    sse.default = Reply(words=WORDS * 20)
    chat = make_chat(sse.url, timeout=5.0, concurrency=2)
    list(chat("warm", model="0"))  # the client's pool and the server's threads exist now
    gc.collect()
    fds, threads = _fds(), threading.active_count()
    before = set(threading.enumerate())  # (an attempt cut by an earlier test may run on)
    for i in range(60):
        stream = chat("abandon", model=str(i))
        next(stream)
        if i % 2:
            stream.close()
        del stream  # dropped: closed by the garbage collector
    after: list[str] = []
    last = threading.Thread(target=lambda: after.append(text(list(chat("after")))), daemon=True)
    last.start()
    last.join(30)
    assert after == [TEXT * 20]  # the slots were all given back
    assert _settled(fds + 4) <= fds + 4
    opero_threads = [
        t for t in threading.enumerate() if t.name.startswith("opero") and t not in before
    ]
    assert opero_threads == []
    assert threading.active_count() <= threads + 4
    assert not chat.cache_contains("abandon", model="3")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
async def test_many_abandoned_async_streams_leave_nothing_behind(sse: SSEServer) -> None:
    sse.default = Reply(words=WORDS * 20)
    client = openai.AsyncOpenAI(base_url=sse.url + "/v1", api_key="k", max_retries=0)

    @opero(timeout=5.0, concurrency=2)
    async def chat(prompt: str, n: int) -> AsyncIterator[Any]:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        async for chunk in stream:
            yield chunk

    assert text([c async for c in chat("warm", 0)]) == TEXT * 20
    gc.collect()
    fds, tasks = _fds(), len(asyncio.all_tasks())
    for i in range(60):
        stream = chat("abandon", i)
        await anext(stream)
        if i % 2:
            await stream.aclose()
        del stream  # dropped: the loop's finalizer closes it
    await asyncio.sleep(0.1)
    last = [c async for c in chat("after", 0)]
    assert text(last) == TEXT * 20  # the slots were all given back
    await asyncio.sleep(0.2)
    assert len(asyncio.all_tasks()) <= tasks
    deadline = time.monotonic() + 10
    while _fds() > fds + 4 and time.monotonic() < deadline:
        gc.collect()
        await asyncio.sleep(0.05)  # the loop closes what the finalizer handed it
    assert _fds() <= fds + 4
    assert not chat.cache_contains("abandon", 3)
    await client.close()
