"""``python -m opero`` runs every mechanism and finishes in seconds."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "opero"], capture_output=True, text=True, timeout=60, check=True
    )
    text = out.stdout
    for marker in ("1. cache", "2. retry", "3. fallback", "AllFailedError", "rate limit", "async"):
        assert marker in text
    assert "models called in order: ['big', 'medium', 'small']" in text
    assert "5 real fetches" in text
    assert "7. operomap" in text and "40 answers" in text
    assert text.rstrip().endswith(
        "all mechanisms worked: cache, retry, fallback, errors, rate limit, async, map"
    )
