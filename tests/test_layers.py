"""Layers point one way: `dags` -> `pipelines` -> `components` -> `components.core` (ARCHITECTURE.md).

Read from the source (every import statement, at module level or inside a function): no module of
`components/` imports `pipelines/` or `dags/`; the core imports nothing of ours outside itself; a
component package never imports another one (it reads other components' artifacts through the core);
inside `pipelines/`, `workflow` -> nothing above it, `airflow` -> `workflow`, `ops` -> both; tests import
only `tests.helpers`; our modules import each other without cycles; the artifact contracts are spelled in
the core only; and `code_version()` changes when any file the components import changes.
"""

from __future__ import annotations

import ast
import importlib
import shutil
from pathlib import Path

import pytest

from pipelines.workflow.training import code_version
from tests.helpers.data import REPO_ROOT

LAYERED = ("dags", "pipelines", "components")
# Shared by the component packages: the core, the module code TFX calls, resolver strategies, scoring.
SHARED = ("core", "modules", "resolvers", "scoring")
COMPONENT_PACKAGES = sorted(
    path.name
    for path in (REPO_ROOT / "components").iterdir()
    if (path / "component.py").exists() and path.name not in SHARED
)


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
    assert (
        "components.core.spec"
        in IMPORTS["pipelines.workflow.training"] | IMPORTS["components.modules.model_builder"]
    )
    assert "components.core.sources" in IMPORTS["components.core.spec"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components")))
def test_components_never_import_pipelines_or_dags(module):
    upward = {name for name in IMPORTS[module] if name.split(".")[0] in ("pipelines", "dags")}
    assert not upward, f"{MODULES[module]} imports {sorted(upward)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components.core")))
def test_the_core_imports_only_itself(module):
    outside = {name for name in IMPORTS[module] if not name.startswith("components.core")}
    assert not outside, f"{MODULES[module]} imports {sorted(outside)}"


def component_package(module: str) -> str | None:
    parts = module.split(".")
    return (
        parts[1] if len(parts) > 1 and parts[0] == "components" and parts[1] in COMPONENT_PACKAGES else None
    )


def test_every_component_package_exports_its_component():
    from tfx.dsl.components.base.base_component import BaseComponent

    assert len(COMPONENT_PACKAGES) == 9, COMPONENT_PACKAGES
    for package in COMPONENT_PACKAGES:
        module = importlib.import_module(f"components.{package}")
        exported = [getattr(module, name) for name in module.__all__]
        assert any(isinstance(value, type) and issubclass(value, BaseComponent) for value in exported), (
            package
        )


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components.")))
def test_components_read_each_other_only_through_the_core(module):
    own = component_package(module)
    others = {
        name
        for name in IMPORTS[module]
        if component_package(name) is not None and component_package(name) != own
    }
    assert not others, (
        f"{MODULES[module]} imports {sorted(others)}: read the artifact through components.core"
    )


PIPELINE_LAYERS = {"pipelines.workflow": 0, "pipelines.airflow": 1, "pipelines.ops": 2}


def pipeline_layer(module: str) -> int | None:
    return next((rank for prefix, rank in PIPELINE_LAYERS.items() if module.startswith(prefix)), None)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if pipeline_layer(m) is not None))
def test_pipelines_roles_point_one_way(module):
    upward = {name for name in IMPORTS[module] if (pipeline_layer(name) or 0) > pipeline_layer(module)}
    assert not upward, f"{MODULES[module]} imports {sorted(upward)}"


def test_dag_files_are_thin():
    for path in sorted((REPO_ROOT / "dags").glob("*.py")):
        assert IMPORTS[module_of(path)] <= {"pipelines.airflow.dags"}, path


TEST_FILES = sorted((REPO_ROOT / "tests").rglob("*.py"))


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_tests_import_helpers_not_other_tests(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    wrong = {n for n in names if n.split(".")[0] in ("tests", "bench") and not n.startswith("tests.helpers")}
    assert not wrong, f"{path} imports {sorted(wrong)}: shared test code belongs in tests/helpers/"


CONTRACT_STRINGS = {
    *(
        "problem_spec",
        "code_version",
        "run_parameters",
        "baseline_blessing",
        "test_predictions",
        "device_models",
    ),
    *("test_predictions.npz", "feature_importance.json", "power.json", "targets.json", "history.json"),
    *("protocol.json", "tuner_results.json", "report.html", "report.json", "serving_raw", "page.json"),
}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "components.core.artifacts"))
def test_contracts_are_spelled_in_the_core_only(module):
    tree = ast.parse(MODULES[module].read_text())
    spelled = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)} & CONTRACT_STRINGS
    artifact_types = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).endswith("Artifact") for base in node.bases)
    ]
    assert not spelled, f"{MODULES[module]} spells {sorted(spelled)}: use components.core.artifacts"
    assert not artifact_types, f"{MODULES[module]} defines {artifact_types}: artifact types live in the core"


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
