"""Nothing in the project loads pickles or runs code found in data or spec files.

The Python sources are parsed and every call is checked: no eval/exec/compile of strings, no
pickle/marshal/dill/joblib loads, no unsafe YAML loaders, no `np.load(..., allow_pickle=True)`, no
shell=True. A new call of that kind fails here with its file and line. (The spec loader's refusal of
YAML object tags is proven on real input in tests/components/core/test_spec.py and test_spec_fuzz.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.data import REPO_ROOT

SOURCE_FOLDERS = ("pipelines", "components", "dags", "bench", "tests")
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULE_CALLS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("dill", "load"),
    ("dill", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("joblib", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
    ("shelve", "open"),
}


def python_files() -> list[Path]:
    return sorted(p for folder in SOURCE_FOLDERS for p in (REPO_ROOT / folder).rglob("*.py"))


def dangerous_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        keywords = {k.arg: k.value for k in node.keywords}
        if isinstance(func, ast.Name) and func.id in FORBIDDEN_NAMES:
            found.append((node.lineno, f"{func.id}()"))
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            call = (func.value.id, func.attr)
            if call in FORBIDDEN_MODULE_CALLS:
                found.append((node.lineno, ".".join(call)))
            if call == ("yaml", "load") and "Safe" not in ast.unparse(
                keywords.get("Loader", ast.Constant(""))
            ):
                found.append((node.lineno, "yaml.load without a safe Loader"))
        if isinstance(keywords.get("allow_pickle"), ast.Constant) and keywords["allow_pickle"].value:
            found.append((node.lineno, "allow_pickle=True"))
        if isinstance(keywords.get("shell"), ast.Constant) and keywords["shell"].value:
            found.append((node.lineno, "shell=True"))
    return found


def test_the_scan_finds_what_it_looks_for():
    sample = "pickle.loads(b)\nyaml.load(t)\nnp.load(f, allow_pickle=True)\neval(s)\nrun(c, shell=True)\n"
    assert [line for line, _ in dangerous_calls(ast.parse(sample))] == [1, 2, 3, 4, 5]
    assert dangerous_calls(ast.parse("yaml.load(t, Loader=yaml.SafeLoader)\nyaml.safe_load(t)\n")) == []


def test_no_source_file_loads_pickles_or_runs_code_from_data():
    files = python_files()
    assert len(files) > 40
    problems = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {what}"
        for path in files
        for line, what in dangerous_calls(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert problems == []
