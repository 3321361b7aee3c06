"""LLM-style fallback across models, against a local simulated service (no network).

    python examples/llm_fallback.py

Each prompt tries "large" first; when it is overloaded opero moves to "medium", then "small",
within the same round; a round where every model failed is retried after a backoff.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from opero import AllFailedError, opero


class SimulatedLLM:
    """Pretend provider: "large" is overloaded 70 % of the time, "medium" 30 %."""

    def __init__(self, seed: int = 3) -> None:
        self.random = random.Random(seed)
        self.log: list[str] = []

    def complete(self, prompt: str, model: str) -> str:
        self.log.append(model)
        overload = {"large": 0.7, "medium": 0.3, "small": 0.0}[model]
        if self.random.random() < overload:
            raise ConnectionError(f"503 {model} overloaded")
        return f"{model} says: {prompt[::-1]}"


llm = SimulatedLLM()


@opero(retries=2, min_delay=0.05, arg_fallback="model")
def ask(prompt: str, model: Any = ("large", "medium", "small")) -> str:
    return llm.complete(prompt, model)  # receives one model per attempt


def main() -> int:
    for prompt in ("hello", "opero", "fallback"):
        llm.log.clear()
        print(f"{ask(prompt):28} tried {llm.log}")
    print(f"cached: {ask('hello')}")

    @opero(cache=False, retries=1, min_delay=0.01, arg_fallback="model")
    def always_down(prompt: str, model: Any = ("large", "large-eu")) -> str:
        raise ConnectionError(f"503 {model} overloaded")

    try:
        always_down("x")
    except AllFailedError as group:
        print(
            f"all failed: {len(group.exceptions)} attempts: "
            + ", ".join(e.__notes__[0] for e in group.exceptions)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
