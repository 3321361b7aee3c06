"""Several API keys and two models with the official OpenAI SDK: each (key, model) pair has its
own requests-per-minute and tokens-per-minute budget, token costs are estimated before a
request and corrected by the answer's `usage`, and calls are spread across the keys. Runs
against a local server that enforces those limits with 429s (no network; needs the `clients`
dependency group).

    python examples/openai_keys_models.py

The limits are scaled down so the example runs in a few seconds: periods of 6 s stand for a
provider's minute ("24/6s" for "240/minute").
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai import OpenAI
from openai.types.chat import ChatCompletion

from opero import Limit, fallback, opero, operomap

KEYS = ["sk-one", "sk-two", "sk-three"]
PERIOD = 6  # seconds
RPS = {"gpt-big": 4, "gpt-small": 10}  # requests per second, per key and model
TPS = {"gpt-big": 400, "gpt-small": 2000}  # tokens per second, per key and model
USED = 60  # the tokens each answer really uses (the estimate below says 150)


def serve() -> tuple[ThreadingHTTPServer, str, dict[str, int]]:
    """A server holding a token bucket per (key, model) for requests and one for tokens (each
    holds one period's budget, refilled at its rate)."""
    lock = threading.Lock()
    buckets: dict[tuple[str, str, str], tuple[float, float]] = {}
    counts: dict[str, int] = defaultdict(int)

    def take(name: tuple[str, str, str], rate: float, amount: float) -> bool:
        now = time.monotonic()
        tokens, at = buckets.get(name, (rate * PERIOD, now))
        tokens = min(rate * PERIOD, tokens + (now - at) * rate)
        ok = tokens >= amount
        buckets[name] = (tokens - amount if ok else tokens, now)
        return ok

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            model = body["model"]
            with lock:
                ok = take((key, model, "requests"), RPS[model], 1)
                ok = ok and take((key, model, "tokens"), TPS[model], USED)
                counts["200" if ok else "429"] += 1
                counts[key] += ok
            answer: dict[str, Any] = {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"{model}: ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": USED - 10,
                    "completion_tokens": 10,
                    "total_tokens": USED,
                },
            }
            data = json.dumps(answer if ok else {"error": {"message": "rate limited"}}).encode()
            self.send_response(200 if ok else 429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1", counts


server, base_url, counts = serve()
clients = {key: OpenAI(api_key=key, base_url=base_url, max_retries=0) for key in KEYS}


def estimate(prompt: str, api_key: str) -> int:
    return len(prompt) // 4 + 140  # the prompt, and room for the answer


def used(response: ChatCompletion) -> int:
    return response.usage.total_tokens if response.usage else 0


def limits(model: str) -> dict[str, list[str | Limit]]:
    """Every key gets its own budget for this model (the "*" entry is a template)."""
    requests, tokens = RPS[model] * PERIOD, TPS[model] * PERIOD
    return {
        "*": [f"{requests}/{PERIOD}s", Limit(f"{tokens}/{PERIOD}s", cost=estimate, actual=used)]
    }


@operomap(
    workers=16, arg_fallback="api_key", fallback_strategy="spread", rate_limit=limits("gpt-big")
)
def ask_big(prompt: str, api_key: str = fallback(*KEYS)) -> ChatCompletion:
    messages = [{"role": "user", "content": prompt}]
    return clients[api_key].chat.completions.create(model="gpt-big", messages=messages)  # type: ignore[arg-type]


@opero(arg_fallback="api_key", fallback_strategy="spread", rate_limit=limits("gpt-small"))
def ask_small(prompt: str, api_key: str = fallback(*KEYS)) -> ChatCompletion:
    messages = [{"role": "user", "content": prompt}]
    return clients[api_key].chat.completions.create(model="gpt-small", messages=messages)  # type: ignore[arg-type]


started = time.monotonic()
answers = ask_big([f"Summarize chapter {n}." for n in range(90)])
took = time.monotonic() - started
print(f"{len(answers)} answers from gpt-big in {took:.1f}s")
print(f"ask_small: {ask_small('One line on whales.').choices[0].message.content}")
print(f"per key: {[counts[k] for k in KEYS]}, 429s: {counts['429']}")
print(ask_big.stats())
server.shutdown()
sys.exit(0)
