"""The house rules of ``src/opero``, checked on its imports (docs/design.md draws them).

- no import cycle between modules (imports under ``if TYPE_CHECKING:`` aside);
- arrows point one way: decorators -> maps -> cache / limits -> core -> options ->
  limit_spec, errors;
  ``backends/`` is reached only from ``decorators/`` (where options become parts), and
  itself reaches only the interfaces below it;
- no source file over 300 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "opero"

#: a module may import its own room and rooms of a lower rank
RANK: dict[str, float] = {
    "errors": 0,
    "checks": 0,  # the checks of option values
    "combinations": 0,  # options given where the others leave them no effect
    "limit_spec": 0,  # what a rate limit is, as users write it (options checks it)
    "policy": 0.25,  # retry budgets, learning limits and fallback values, as users write them
    "service": 0.5,  # opero.Service's settings, and reading rate_limit in every form
    "options": 1,
    "core": 2,
    "cache": 3,
    "limits": 3,
    "backends": 4,
    "maps": 5,
    "decorators": 6,
    "telemetry": 6,  # the public switch of telemetry (its parts live in core)
    "testing": 7,
    "__main__": 7,
    "": 8,  # the package's __init__: re-exports only
}
#: only these rooms may import backends/ (the composition of parts from options)
REACHES_BACKENDS = {"backends", "decorators"}
MAX_LINES = 300


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports at run time (anywhere in its body)."""
    package = name.split(".", maxsplit=1)[0]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == package)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    head = base[: len(base) - (child.level - 1)]
                    target = ".".join(head + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == package:
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        found.add(sub if sub in modules else target)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in modules and m != name and not m.startswith(name + ".")}


def _graph(root: Path) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for source, targets in graph.items():
        here = _room(source)
        for target in targets:
            there = _room(target)
            if there == here or there == "":
                continue
            if there == "backends" and here not in REACHES_BACKENDS:
                wrong.append(f"{source} -> {target} (backends are reached through interfaces)")
            elif RANK[there] >= RANK[here]:
                wrong.append(f"{source} -> {target} ({here} may not import {there})")
    return sorted(wrong)


def test_no_import_cycle() -> None:
    assert _cycles(_graph(PACKAGE)) == []


def test_arrows_point_one_way() -> None:
    graph = _graph(PACKAGE)
    assert {_room(m) for m in graph} <= set(RANK), "a new room needs a rank here"
    assert _wrong_arrows(graph) == []


def test_no_file_over_the_limit() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"a": "from pkg import b\n", "b": "import pkg.a\n"}, [["pkg.a", "pkg.b"]]),
        (
            {
                "a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.b\n",
                "b": "import pkg.a\n",
            },
            [],
        ),
        (
            {"a": "def f():\n    from pkg.b import x\n", "b": "from pkg import a\n"},
            [["pkg.a", "pkg.b"]],
        ),
    ],
)
def test_the_cycle_finder_finds_cycles(tmp_path: Path, files: dict[str, str], expected) -> None:
    """The guard itself: a cycle (also through a function-level import) is found; a
    TYPE_CHECKING-only import is not one."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    for name, text in files.items():
        (root / f"{name}.py").write_text(text)
    assert _cycles(_graph(root)) == expected


def test_the_arrow_check_finds_upward_imports() -> None:
    graph = {
        "opero.core.retry": {"opero.cache.layer"},
        "opero.maps.items": {"opero.backends.redis.store"},
        "opero.decorators.parts": {"opero.backends.redis.store", "opero.core.judge"},
    }
    assert _wrong_arrows(graph) == [
        "opero.core.retry -> opero.cache.layer (core may not import cache)",
        "opero.maps.items -> opero.backends.redis.store (backends are reached through interfaces)",
    ]
