"""Fall back to the next API key when one is revoked or over quota.

    python examples/api_key_fallback.py

`arg_fallback="api_key"` walks the keys in order within each round; `retry_on` limits what
moves on to the next key: a bad request (ValueError) is the caller's mistake and propagates
at once, whatever key is used.
"""

from __future__ import annotations

import sys

from opero import opero

REVOKED = {"key-1"}
QUOTA = {"key-2": 0}


class QuotaExceeded(Exception):
    pass


def charge(amount: int, api_key: str) -> str:
    if api_key in REVOKED:
        raise PermissionError(f"{api_key} revoked")
    if api_key in QUOTA and QUOTA[api_key] <= 0:
        raise QuotaExceeded(f"{api_key} over quota")
    if amount <= 0:
        raise ValueError("amount must be positive")
    return f"charged {amount} with {api_key}"


@opero(cache=False, retries=0, arg_fallback="api_key", retry_on=(PermissionError, QuotaExceeded))
def pay(amount: int, api_key: list[str] | str) -> str:
    return charge(amount, api_key)  # type: ignore[arg-type]


def main() -> int:
    keys = ["key-1", "key-2", "key-3"]
    print(pay(10, api_key=keys))
    try:
        pay(-5, api_key=keys)
    except ValueError as exc:
        print(f"not retried, not moved to another key: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
