"""What type checkers see: ``tests/typing/*.py`` are never run; mypy --strict and pyright read
their ``assert_type`` lines and their expected errors (each with the ignore comment it needs;
an ignore comment that is not needed fails both checkers). One run per checker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CASES = sorted(str(p) for p in (ROOT / "tests" / "typing").glob("*.py"))


@pytest.mark.parametrize(
    "checker",
    [["-m", "mypy", "--strict", "--no-incremental"], ["-m", "pyright"]],
    ids=["mypy", "pyright"],
)
def test_type_checkers_read_the_typing_cases(checker: list[str]) -> None:
    assert len(CASES) >= 3
    result = subprocess.run(
        [sys.executable, *checker, *CASES],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
