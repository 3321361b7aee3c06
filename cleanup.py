#!/usr/bin/env python3
"""Project health in one command: ``python cleanup.py status [--no-tests]``.

Runs ruff check, ruff format --check, mypy (strict) on src/, and the test suite, and
prints one summary line per step. ``--no-tests`` skips the test suite (CI runs the suite
on its own, with coverage). Exits non-zero when any step fails. Run it through ``uv run``
(or inside the project's virtualenv) so the tools are installed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent

STEPS: list[tuple[str, list[str]]] = [
    (
        "ruff check",
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "src",
            "tests",
            "benchmarks",
            "examples",
            "cleanup.py",
        ],
    ),
    (
        "ruff format",
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--check",
            "src",
            "tests",
            "benchmarks",
            "cleanup.py",
        ],
    ),
    ("mypy strict", [sys.executable, "-m", "mypy", "--strict", "src/opero"]),
    ("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]),
]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def status(tests: bool = True) -> int:
    failed = 0
    for name, command in (step for step in STEPS if tests or step[0] != "tests"):
        start = time.monotonic()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        ok = result.returncode == 0
        failed += not ok
        summary = _last_line(result.stdout) or _last_line(result.stderr)
        print(f"{'ok  ' if ok else 'FAIL'} {name:<12} {took:5.1f}s  {summary}")
        if not ok:
            print(
                "\n".join(
                    "     | " + line for line in (result.stdout + result.stderr).splitlines()[-40:]
                )
            )
    print("status: clean" if not failed else f"status: {failed} step(s) failing")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["status"]:
        return status()
    if argv[1:] == ["status", "--no-tests"]:
        return status(tests=False)
    print("usage: python cleanup.py status [--no-tests]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
