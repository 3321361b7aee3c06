"""Count retries, fallbacks and cache hits into a metrics dict with opero's hooks.

    python examples/metrics_hooks.py

Hooks receive small frozen dataclasses (RetryDetails, FallbackDetails, CacheHitDetails); an
exception raised by a hook is logged and ignored, so observability never breaks a call.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from opero import opero

metrics: Counter[str] = Counter()


def count(event: str) -> Any:
    def hook(details: object) -> None:
        metrics[event] += 1
        metrics[f"{event}:{type(details).__name__}"] += 1

    return hook


attempts: Counter[str] = Counter()


@opero(
    retries=2,
    min_delay=0.01,
    arg_fallback="model",
    on_retry=count("retry"),
    on_fallback=count("fallback"),
    on_cache_hit=count("cache_hit"),
)
def ask(prompt: str, model: Any = ("big", "small")) -> str:
    attempts[model] += 1
    if model == "big":
        raise ConnectionError("big is overloaded")
    if attempts["small"] == 1:
        raise TimeoutError("small timed out once")
    return f"[{model}] {prompt}"


def main() -> int:
    print(ask("hello"))  # big fails, small times out, retry: big fails, small answers
    print(ask("hello"))  # a cache hit
    print(dict(sorted(metrics.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
