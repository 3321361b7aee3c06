"""``python -m opero --trace``: the tour, then the tree of its spans."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_prints_the_span_tree_of_its_tour() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "opero", "--trace"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    tour, _, tree = out.partition("== the span tree of the tour")
    assert "all mechanisms worked" in tour
    lines = tree.splitlines()
    assert "1. cache: the second identical call is answered from memory" in lines
    assert "  opero main.<locals>.ask_cached cache.hit=True" in lines
    assert "    opero.attempt attempt.outcome=success" in lines  # a call's child
    assert any(line.startswith("    ~ wait backoff ") for line in lines)
    assert any(line.startswith("    ~ wait rate_limit ") for line in lines)
    assert (
        "    opero.attempt fallback.value='small' attempt.outcome=success" in lines
    )  # section 3: the third model answered
    items = lines[
        lines.index(
            "7. operomap: 40 prompts over 4 threads, fallbacks per item, one global rate limit"
        ) :
    ]
    assert any(line.startswith("  opero main.<locals>.answer cache.hit=False") for line in items)


def test_without_the_sdk_the_demo_says_what_to_install() -> None:
    code = (
        "import sys, runpy; sys.modules['opentelemetry.sdk'] = None; "
        "sys.argv = ['opero', '--trace']; runpy.run_module('opero', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "opentelemetry-sdk" in done.stderr and "== 1. cache" not in done.stdout
