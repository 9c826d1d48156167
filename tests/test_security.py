"""Nothing in the project loads pickles or runs code found in data or spec files.

The Python sources are parsed and every call is checked: no eval/exec/compile of strings, no
pickle/marshal/dill/joblib loads (nor pandas' read_pickle), no unsafe YAML loaders, no shell commands
(os.system, os.popen), `shell=` and `np.load(..., allow_pickle=)` only as a literal False, and a shell's
`-c` script only as a literal (a script built from values runs whatever those values say). Calls are
resolved through the module's imports, so `from pickle import loads` and `import pickle as p` are
caught too. A new call of that kind fails here with its file and line. (The spec loader's refusal of
YAML object tags is proven on real input in tests/components/core/test_spec.py and test_spec_fuzz.py.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

import pytest

from tests.helpers.data import REPO_ROOT

SOURCE_FOLDERS = ("pipelines", "components", "dags", "bench", "tests")
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_CALLS = {
    *(f"builtins.{name}" for name in FORBIDDEN_NAMES),
    *(
        f"{module}.{call}"
        for module in ("pickle", "marshal", "dill", "cloudpickle")
        for call in ("load", "loads")
    ),
    "pickle.Unpickler",
    "joblib.load",
    "pandas.read_pickle",
    "yaml.unsafe_load",
    "yaml.full_load",
    "shelve.open",
    "os.system",
    "os.popen",
}
# Names that mean a module by convention even where the snippet or file does not import it.
CONVENTIONAL_ALIASES = {"pd": "pandas", "np": "numpy"}
SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}
SHELL_SCRIPT_OPTION = re.compile(r"-[a-z]*c[a-z]*")  # -c, or -c among other short options (-ec, -lc)


def python_files() -> list[Path]:
    return sorted(p for folder in SOURCE_FOLDERS for p in (REPO_ROOT / folder).rglob("*.py"))


def imported_names(tree: ast.AST) -> dict[str, str]:
    """What each name bound by an import stands for: `p` -> `pickle`, `loads` -> `pickle.loads`."""
    names = dict(CONVENTIONAL_ALIASES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                names[bound] = alias.name if alias.asname else bound
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def qualified_name(func: ast.expr, names: dict[str, str]) -> str | None:
    """`p.loads` -> `pickle.loads` (with `import pickle as p`); None for calls of computed things."""
    attributes = []
    while isinstance(func, ast.Attribute):
        attributes.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    base = names.get(func.id, f"builtins.{func.id}" if func.id in FORBIDDEN_NAMES else func.id)
    return ".".join([base, *reversed(attributes)])


def not_literal_false(value: ast.expr | None) -> bool:
    """True for `True`, a variable, an expression: anything but the literal False (or nothing)."""
    return value is not None and not (isinstance(value, ast.Constant) and value.value is False)


def call_problems(node: ast.Call, names: dict[str, str]) -> list[str]:
    keywords = {k.arg: k.value for k in node.keywords}
    found = []
    called = qualified_name(node.func, names)
    if called in FORBIDDEN_CALLS:
        found.append(f"{called}()")
    if called == "yaml.load" and "Safe" not in ast.unparse(keywords.get("Loader", ast.Constant(""))):
        found.append("yaml.load without a safe Loader")
    for option in ("allow_pickle", "shell"):
        if not_literal_false(keywords.get(option)):
            found.append(f"{option}={ast.unparse(keywords[option])}")
    return found


def shell_script_problems(node: ast.List | ast.Tuple) -> list[str]:
    """`["bash", "-c", script]` where the script is not a literal: an f-string, .format, %, a variable."""
    items = node.elts
    return [
        f"{items[i].value} {items[i + 1].value} {ast.unparse(items[i + 2])}"
        for i in range(len(items) - 2)
        if isinstance(items[i], ast.Constant)
        and isinstance(items[i].value, str)
        and PurePosixPath(items[i].value).name in SHELLS
        and isinstance(items[i + 1], ast.Constant)
        and SHELL_SCRIPT_OPTION.fullmatch(str(items[i + 1].value))
        and not (isinstance(items[i + 2], ast.Constant) and isinstance(items[i + 2].value, str))
    ]


def dangerous_calls(tree: ast.AST) -> list[tuple[int, str]]:
    names = imported_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += [(node.lineno, problem) for problem in call_problems(node, names)]
        elif isinstance(node, ast.List | ast.Tuple):
            found += [
                (node.lineno, f"shell script built from values: {p}") for p in shell_script_problems(node)
            ]
    return sorted(found)


def test_the_scan_finds_what_it_looks_for():
    sample = "pickle.loads(b)\nyaml.load(t)\nnp.load(f, allow_pickle=True)\neval(s)\nrun(c, shell=True)\n"
    assert [line for line, _ in dangerous_calls(ast.parse(sample))] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "sample",
    [
        "from pickle import loads\nloads(b)",
        "from pickle import loads as from_bytes\nfrom_bytes(b)",
        "import pickle as p\np.loads(b)",
        "import pickle as p\np.Unpickler(f).load()",
        "from yaml import load\nload(t)",
        "import builtins\nbuiltins.eval(s)",
        "pd.read_pickle(path)",
        "pandas.read_pickle(path)",
        "import pandas as frames\nframes.read_pickle(path)",
        "from pandas import read_pickle\nread_pickle(path)",
        "run(c, shell=use_shell)",
        "run(c, shell=1)",
        "subprocess.run(c, shell=options.shell)",
        "np.load(f, allow_pickle=trusted)",
        "np.load(f, allow_pickle=None or True)",
        'run(["bash", "-c", f"source {path}"])',
        'run(["sh", "-c", "source {}".format(path)])',
        'run(("/bin/bash", "-ec", "source %s" % path))',
        'run(["bash", "-c", "source " + path])',
        'script = f"source {path}"\nrun(["bash", "-c", script])',
        "os.system(command)",
    ],
)
def test_each_way_of_running_data_as_code_trips_the_scan(sample):
    assert dangerous_calls(ast.parse(sample)), sample


@pytest.mark.parametrize(
    "sample",
    [
        "yaml.load(t, Loader=yaml.SafeLoader)\nyaml.safe_load(t)",
        "run(c, shell=False)\nsubprocess.run(c)",
        "np.load(f, allow_pickle=False)\nnp.load(f)",
        'run(["bash", "-c", \'set -a; . "$1"\', "bash", str(path)])',
        'run([sys.executable, "-c", f"print({value})"])',
        "import re\nre.compile(pattern)\nfrom re import compile\ncompile(pattern)",
        "frame.to_pickle",
    ],
)
def test_safe_forms_pass_the_scan(sample):
    assert dangerous_calls(ast.parse(sample)) == [], sample


def test_no_source_file_loads_pickles_or_runs_code_from_data():
    files = python_files()
    assert len(files) > 40
    problems = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {what}"
        for path in files
        for line, what in dangerous_calls(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert problems == []
