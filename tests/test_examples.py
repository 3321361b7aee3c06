"""Every example that needs nothing but Python runs, so none can rot. (The Redis and Dask
examples run in tests/test_redis.py and tests/test_dask.py against real servers.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_metrics_hooks_example() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "metrics_hooks.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "[small] hello" in out.stdout
    assert "'retry': 1" in out.stdout
    assert "'fallback': 2" in out.stdout
    assert "'cache_hit': 1" in out.stdout
    assert "'retry:RetryDetails': 1" in out.stdout
