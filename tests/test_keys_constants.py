"""The module constants a function reads are part of its disk key, read at each call; the
state it keeps in module globals is not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

MODULE = """
import enum
from opero import opero

hits = []
calls = 0
seen = []


class Tier(enum.Enum):
    FREE = 1
    PAID = 2


@opero(cache_backend="disk", cache_dir={cache!r}, on_cache_hit=hits.append)
def ask(x):
    global calls
    calls += 1  # state the function keeps
    seen.append(x)  # mutable module state
    prefix = (lambda: PREFIX)()  # read by nested code
    return f"{{prefix}}/{{TIER.name}}/{{LIMITS[0]}}/{{helper(x)}}"


def helper(x):  # defined below the decorated function
    return x


PREFIX = "p1"  # so are the constants
TIER = Tier.FREE
LIMITS = (10, 2.5)
"""


def _load(tmp_path: Path) -> ModuleType:
    path = tmp_path / "keyed_constants.py"
    path.write_text(MODULE.format(cache=str(tmp_path / "cache")))
    spec = importlib.util.spec_from_file_location("keyed_constants", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["keyed_constants"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["keyed_constants"]
    return module


def test_module_constants_are_read_at_each_call_and_state_is_not(tmp_path: Path) -> None:
    m = _load(tmp_path)
    assert (m.ask(1), m.ask(1), len(m.hits)) == ("p1/FREE/10/1", "p1/FREE/10/1", 1)
    assert m.calls == 1 and m.seen == [1]
    m.PREFIX = "p2"
    assert m.ask(1) == "p2/FREE/10/1"
    m.TIER = m.Tier.PAID
    assert m.ask(1) == "p2/PAID/10/1"
    m.LIMITS = (20, 2.5)
    assert m.ask(1) == "p2/PAID/20/1"
    assert len(m.hits) == 1
    m.PREFIX, m.TIER, m.LIMITS = "p1", m.Tier.FREE, (10, 2.5)
    m.seen.clear()  # mutable state changed: still the same key
    assert m.ask(1) == "p1/FREE/10/1"
    assert len(m.hits) == 2 and m.calls == 4
