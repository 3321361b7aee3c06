"""Every ```python block of README.md type-checks under ``mypy --strict``, as a module of
its own (so each example says what it imports and defines). A block whose first line is
``# not type-checked`` is left out: keep that for an example that truly cannot be typed.

One mypy run reads all blocks; errors are reported at their README line. Mind the time:
an SDK an example imports is type-checked too (anthropic alone adds ~10 s to a cold run)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP = "# not type-checked"
#: an opening fence (possibly indented, in a list item) tagged python or py
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?:python|py)[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
#: a module mypy must find fault with: proves the run checked the files it was given
CANARY = 'broken: int = "not an int"\n'


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line of the first code line, code)`` for each python block of ``text``."""
    blocks = []
    for match in FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start("body")) + 1
        blocks.append((first_line, textwrap.dedent(match.group("body"))))
    return blocks


def test_python_blocks_are_found_with_their_lines() -> None:
    text = "intro\n```python\nx = 1\n```\n- item\n  ```py\n  y = 2\n  ```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (7, "y = 2\n")]


def test_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    checked = [(line, code) for line, code in blocks if not code.lstrip().startswith(SKIP)]
    assert len(checked) >= 5, f"only {len(checked)} python blocks found in README.md"
    for line, code in checked:
        (tmp_path / f"readme_line_{line}.py").write_text(code, encoding="utf-8")
    (tmp_path / "canary.py").write_text(CANARY, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--show-error-codes",
            *sorted(str(p) for p in tmp_path.glob("*.py")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,  # the project's mypy settings, and its .mypy_cache: the SDKs' types
        # (openai, httpx, aiohttp) are read once, not on every run
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert "canary.py:1: error" in output, output  # mypy read the files it was given
    problems = [
        _at_readme_line(entry, tmp_path)
        for entry in output.splitlines()
        if entry.strip() and "canary.py" not in entry and not entry.startswith("Found ")
    ]
    assert not problems, "README examples fail mypy --strict:\n" + "\n".join(problems)


def _at_readme_line(entry: str, where: Path) -> str:
    """``/tmp/.../readme_line_59.py:6: error: ...`` -> ``README.md:64: error: ...``."""
    match = re.match(rf"{re.escape(str(where))}/readme_line_(\d+)\.py:(\d+):(.*)", entry)
    if match is None:
        return entry
    first, line, rest = match.groups()
    return f"README.md:{int(first) + int(line) - 1}:{rest}"
