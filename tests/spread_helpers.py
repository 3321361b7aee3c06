"""Module-level functions (workers load them by name) that show how work spreads over
process workers by order and counts, not by wall-clock spreads a busy machine can stretch."""

from __future__ import annotations

import os
import time
from pathlib import Path


def rendezvous(job: tuple[str, int, int, float]) -> tuple[int, bool]:
    """Mark this item as started, then wait until ``expected`` items have started (or the
    deadline passed); return the worker's pid and whether they all met."""
    folder, index, expected, deadline = job
    Path(folder, str(index)).touch()
    while len(os.listdir(folder)) < expected and time.time() < deadline:
        time.sleep(0.01)
    return os.getpid(), len(os.listdir(folder)) >= expected


def gated(job: tuple[str, int, float]) -> bool:
    """Items past the first few wait (until the deadline) for the caller to open the gate;
    every item returns whether the gate was open when it finished."""
    gate, index, deadline = job
    if index < 8:
        time.sleep(0.02)
    else:
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.005)
    return os.path.exists(gate)
