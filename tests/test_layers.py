"""Layers point one way: `dags` -> `pipelines` -> `components` -> `components.core`.

Read from the source (every import statement, at module level or inside a function): no module of
`components/` imports `pipelines/` or `dags/`, the core imports nothing of ours outside itself, our
modules import each other without cycles, and `code_version()` changes when any file the components
import changes.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from pipelines.training import code_version
from tests.conftest import REPO_ROOT

LAYERED = ("dags", "pipelines", "components")


def module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_of(path): path for package in LAYERED for path in sorted((REPO_ROOT / package).rglob("*.py"))
}


def imported_modules(path: Path) -> set[str]:
    """Our modules that `path` imports (`from package import module` counts as the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES}


IMPORTS = {module: imported_modules(path) for module, path in MODULES.items()}


def test_the_scan_sees_our_imports():
    assert "components.core.spec" in IMPORTS["pipelines.training"] | IMPORTS["components.model"]
    assert "components.core.sources" in IMPORTS["components.core.spec"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components")))
def test_components_never_import_pipelines_or_dags(module):
    upward = {name for name in IMPORTS[module] if name.split(".")[0] in ("pipelines", "dags")}
    assert not upward, f"{MODULES[module]} imports {sorted(upward)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components.core")))
def test_the_core_imports_only_itself(module):
    outside = {name for name in IMPORTS[module] if not name.startswith("components.core")}
    assert not outside, f"{MODULES[module]} imports {sorted(outside)}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycles():
    # A package's __init__ importing its own submodules is how packages export; it is not a cycle.
    graph = {
        module: {name for name in names if not name.startswith(f"{module}.")}
        for module, names in IMPORTS.items()
    }
    cycles = [group for group in strongly_connected(graph) if len(group) > 1]
    assert cycles == [], cycles


def test_the_cycle_check_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"], ["d"]]


def components_closure() -> set[str]:
    """Every module of ours that a module of `components/` imports, directly or not."""
    seen = {module for module in MODULES if module.startswith("components")}
    todo = list(seen)
    while todo:
        for name in IMPORTS[todo.pop()]:
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def test_code_version_changes_when_any_file_the_components_import_changes(tmp_path):
    copy = tmp_path / "components"
    shutil.copytree(REPO_ROOT / "components", copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = code_version(copy)
    assert original == code_version(REPO_ROOT / "components")
    closure = components_closure()
    files = [MODULES[module] for module in closure]
    files += list((REPO_ROOT / "components").rglob("*.mjs"))  # the TF.js runner the exporter starts
    assert all(path.is_relative_to(REPO_ROOT / "components") for path in files), "outside components/"
    for path in files:
        edited = copy / path.relative_to(REPO_ROOT / "components")
        before = edited.read_bytes()
        edited.write_bytes(before + b"\n# edited\n")
        assert code_version(copy) != original, f"editing {path} leaves code_version unchanged"
        edited.write_bytes(before)
    assert code_version(copy) == original
