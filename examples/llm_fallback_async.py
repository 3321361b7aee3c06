"""The async twin of llm_fallback.py: many prompts at once, one rate limit for all.

python examples/llm_fallback_async.py
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

from opero import opero

rng = random.Random(5)
calls: list[str] = []


async def complete(prompt: str, model: str) -> str:
    calls.append(model)
    await asyncio.sleep(0.01)  # network latency
    if model == "large" and rng.random() < 0.5:
        raise TimeoutError(f"{model} timed out")
    return f"{model}: {prompt.upper()}"


@opero(retries=2, min_delay=0.02, arg_fallback="model", rate_limit=100)
async def ask(prompt: str, model: Any = ("large", "small")) -> str:
    return await complete(prompt, model)


async def main() -> int:
    start = time.perf_counter()
    answers = await asyncio.gather(*(ask(f"prompt {i}") for i in range(30)))
    took = time.perf_counter() - start
    print(
        f"{len(answers)} answers in {took:.2f}s with {len(calls)} attempts "
        f"(at most 100/s): {sum(a.startswith('small') for a in answers)} fell back to small"
    )
    print(answers[0])
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
