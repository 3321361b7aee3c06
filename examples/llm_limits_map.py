"""Many prompts against an LLM-style API with a published plan: requests per minute, tokens per
minute and requests in flight, then what happened (a local simulated service, no network).

    python examples/llm_limits_map.py
"""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import Any

from opero import Limit, operomap


def tokens(prompt: str, model: Any = None) -> int:
    """What a request costs under the tokens-per-minute limit (a rough count, like a
    tokenizer would give, plus the answer's budget)."""
    return len(prompt.split()) * 4 + 16


class SimulatedLLM:
    """Pretend provider: "large" is overloaded 30 % of the time; it checks the plan."""

    def __init__(self) -> None:
        self.random = random.Random(7)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def complete(self, prompt: str, model: str) -> str:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            overloaded = model == "large" and self.random.random() < 0.3
        try:
            time.sleep(0.12)
            if overloaded:
                raise ConnectionError(f"503 {model} overloaded")
            return f"{model}: {prompt[::-1]}"
        finally:
            with self.lock:
                self.in_flight -= 1


llm = SimulatedLLM()


@operomap(
    mode="thread",
    workers=16,
    retries=2,
    min_delay=0.01,
    arg_fallback="model",
    rate_limit=["3000/minute", Limit("90000/minute", cost=tokens)],  # RPM and TPM
    concurrency=4,  # requests in flight
    progress=False,
)
def ask(prompt: str, model: Any = ("large", "small")) -> str:
    return llm.complete(prompt, model)


def main() -> int:
    prompts = [f"question number {i} about opero" for i in range(40)]
    start = time.monotonic()
    answers = ask(prompts)
    took = time.monotonic() - start
    s = ask.stats()
    print(f"{len(answers)} answers in {took:.1f}s, at most {llm.most_in_flight} in flight")
    print(f"calls={s.calls} attempts={s.attempts} failures={s.failures} retries={s.retries}")
    print(f"successes={dict(s.successes)} waited={s.wait:.1f}s (summed over attempts)")
    ask(prompts[:10])  # cached now
    print(f"cache: {ask.cache_info()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
