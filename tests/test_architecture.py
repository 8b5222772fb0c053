"""The import graph of annotate/ and learner/: no cycle, learner never imports Django or
annotate, and annotate reaches learner only through learner/__init__.py.

Every import counts, those inside functions too (a cycle hidden in a function is still one);
the implicit import of a parent package by its submodules does not.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("annotate", "learner")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (resolving relative imports and `from x import y`
    where y is a submodule)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names]
            if not (name.startswith(f"{module}.") and set(targets) <= known):
                # `from . import sibling` in a submodule reaches its own package only
                # implicitly (it is already being imported): that edge does not count.
                # A name the package itself defines does.
                targets.append(module)
        else:
            continue
        for target in targets:
            if target in known:
                out.add(target)
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_submodule_importing_a_sibling_does_not_import_its_package_back(tmp_path):
    (tmp_path / "pkg").mkdir()
    sub = tmp_path / "pkg" / "sub.py"
    known = {"pkg", "pkg.sub", "pkg.sibling"}
    sub.write_text("from . import sibling\n")
    assert _imports("pkg.sub", sub, known) == {"pkg.sibling"}
    # helper is a name pkg itself defines
    sub.write_text("from pkg import sibling, helper\n")
    assert _imports("pkg.sub", sub, known) == {"pkg", "pkg.sibling"}


def test_no_module_of_annotate_or_learner_imports_itself_back():
    assert find_cycle(graph()) is None


def test_learner_imports_neither_django_nor_annotate():
    for name, path in _modules().items():
        if not name.startswith("learner"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not {"django", "annotate"} & set(roots), f"{name} imports {roots}"


def test_annotate_reaches_learner_only_through_its_package():
    for name, edges in graph().items():
        if name.startswith("annotate"):
            inner = [m for m in edges if m.startswith("learner.")]
            assert inner == [], f"{name} imports {inner}; use `learner` (its __init__)"
