"""opero with the official SDKs and the common HTTP clients, one recipe each, against a local
server that answers like an LLM API (no network; needs the `clients` dependency group).

    python examples/http_clients.py

The server answers each client's first request with 429 + `Retry-After: 1`, then 200. The
SDKs' own retries are turned off (`max_retries=0`): opero retries, pauses every caller for
the server's delay, and skips a model that keeps failing (`cooldown`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import anthropic
import httpx
import openai
import requests

from opero import fallback, opero

CHAT = {
    "id": "c",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}
MESSAGE = {
    "id": "m",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


def serve() -> tuple[ThreadingHTTPServer, str]:
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            client = self.headers.get("X-Recipe", "?")
            with lock:
                first = client not in seen
                seen.add(client)
            body = json.dumps(
                {"error": {"message": "slow down"}}
                if first
                else MESSAGE
                if self.path.endswith("/messages")
                else CHAT
            ).encode()
            self.send_response(429 if first else 200)
            if first:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


server, URL = serve()
MESSAGES = [{"role": "user", "content": "hello"}]

# --- openai: the SDK retries 2 times by default; let opero do it (max_retries=0) ----------------
oai = openai.OpenAI(
    base_url=URL + "/v1", api_key="sk-test", max_retries=0, default_headers={"X-Recipe": "openai"}
)


@opero(retries=3, arg_fallback="model", cooldown=60, cooldown_after=3)
def ask_openai(prompt: str, model: str = fallback("gpt-big", "gpt-small")) -> str:
    reply = oai.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],  # type: ignore[arg-type]
    )
    return str(reply.choices[0].message.content)


# --- anthropic: same rule (max_retries=0) ---------------------------------------------------------
claude = anthropic.Anthropic(
    base_url=URL, api_key="sk-test", max_retries=0, default_headers={"X-Recipe": "anthropic"}
)


@opero(retries=3)
def ask_anthropic(prompt: str) -> str:
    reply = claude.messages.create(
        model="claude-x", max_tokens=64, messages=[{"role": "user", "content": prompt}]
    )
    return str(reply.content[0].text)  # type: ignore[union-attr]


# --- httpx: raise_for_status() makes 4xx/5xx exceptions opero can read --------------------------
@opero(retries=3)
def post_httpx(payload: dict[str, Any]) -> Any:
    response = httpx.post(
        URL + "/v1/chat/completions", json=payload, headers={"X-Recipe": "httpx"}, timeout=30
    )
    response.raise_for_status()
    return response.json()


# --- requests: the same --------------------------------------------------------------------------
@opero(retries=3)
def post_requests(payload: dict[str, Any]) -> Any:
    response = requests.post(
        URL + "/v1/chat/completions", json=payload, headers={"X-Recipe": "requests"}, timeout=30
    )
    response.raise_for_status()
    return response.json()


# --- aiohttp: raise_for_status=True; its error carries .status and .headers ----------------------
@opero(retries=3)
async def post_aiohttp(payload: dict[str, Any]) -> Any:
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        session.post(
            URL + "/v1/chat/completions", json=payload, headers={"X-Recipe": "aiohttp"}
        ) as response,
    ):
        return await response.json()


def main() -> int:
    for name, call in [
        ("openai", lambda: ask_openai("hello")),
        ("anthropic", lambda: ask_anthropic("hello")),
        ("httpx", lambda: post_httpx({"model": "m"})["choices"][0]["message"]["content"]),
        ("requests", lambda: post_requests({"model": "m"})["choices"][0]["message"]["content"]),
        (
            "aiohttp",
            lambda: asyncio.run(post_aiohttp({"model": "m"}))["choices"][0]["message"]["content"],
        ),
    ]:
        start = time.monotonic()
        answer = call()
        # openai: the 429 paused gpt-big, so gpt-small answered at once; the others waited 1 s
        print(f"{name}: {answer!r} in {time.monotonic() - start:.1f}s")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
