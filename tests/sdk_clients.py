"""One call through each real client, against a local server (tests only). Module-level, so
process workers can import them. The SDKs' own retries are off (``max_retries=0``): opero
retries."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

MESSAGES = [{"role": "user", "content": "hi"}]


@cache
def _openai(url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0)


@cache
def _anthropic(url: str) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)


def _fresh_clients() -> None:
    """A forked worker must not reuse the parent's connections: new clients there."""
    _openai.cache_clear()
    _anthropic.cache_clear()


os.register_at_fork(after_in_child=_fresh_clients)


def openai_chat(url: str, model: str = "m") -> str:
    reply = _openai(url).chat.completions.create(model=model, messages=MESSAGES)
    return str(reply.choices[0].message.content)


def anthropic_message(url: str, model: str = "m") -> str:
    reply = _anthropic(url).messages.create(model=model, max_tokens=8, messages=MESSAGES)
    return str(reply.content[0].text)


def httpx_post(url: str, model: str = "m") -> str:
    import httpx

    response = httpx.post(url + "/v1/chat/completions", json={"model": model}, timeout=10)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def requests_post(url: str, model: str = "m") -> str:
    import requests

    response = requests.post(url + "/v1/chat/completions", json={"model": model}, timeout=10)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


async def aiohttp_post(url: str, model: str = "m") -> str:
    import aiohttp

    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        session.post(url + "/v1/chat/completions", json={"model": model}) as response,
    ):
        data = await response.json()
    return str(data["choices"][0]["message"]["content"])


SYNC = {
    "openai": openai_chat,
    "anthropic": anthropic_message,
    "httpx": httpx_post,
    "requests": requests_post,
}
PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "httpx": "/v1/chat/completions",
    "requests": "/v1/chat/completions",
    "aiohttp": "/v1/chat/completions",
}


def call(client: str, url: str, model: str = "m") -> str:
    """One call through ``client`` (aiohttp on a fresh event loop)."""
    if client == "aiohttp":
        import asyncio

        return asyncio.run(aiohttp_post(url, model))
    return SYNC[client](url, model)
