"""Helpers for tests that run the real pipeline: specs on temporary data, serving-folder snapshots."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from components.core.sources import write_table
from tests.helpers.data import REPO_ROOT, TAXI_SPEC

COMPONENT_NODES = (
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "Transform",
    "Trainer",
    "Evaluator",
    "DumbBaselineGate",
    "ModelExporter",
    "Report",
    "Pusher",
)
SMALL_TRAINING = {
    "epochs": 6,
    "steps_per_epoch": 40,
    "batch_size": 64,
    "hidden_units": [32, 16],
    "dropout": 0.0,
    "learning_rate": 0.003,
    "early_stopping_patience": 3,
}


# One device target keeps the ModelExporter in every pipeline test; tests/e2e/test_deployment.py builds all.
SMALL_DEPLOYMENT = {"tflite": ["float32"], "tfjs": []}
# For a run that only has to train and push the same model as another (the SavedModel alone).
NO_DEVICE_TARGETS = {"tflite": [], "tfjs": []}


def write_taxi_spec(
    folder: Path, source: Path, threshold: float = 0.7, file_name: str = "spec.yaml", **changes
) -> Path:
    """The taxi spec on `source` with a small training budget and one device target, as `file_name`."""
    spec = yaml.safe_load(TAXI_SPEC.read_text())
    spec["data"]["source"] = str(source)
    spec["training"] = dict(SMALL_TRAINING)
    spec["deployment"] = dict(SMALL_DEPLOYMENT)
    spec["metric"] = {"name": "auc", "threshold": threshold}
    # Tuning (on by default) and slices cost minutes; tests/e2e/test_workflow.py runs them, the other
    # pipeline tests need not.
    spec["tuning"] = False
    spec["evaluation"] = {"baseline_margin": 0.05}
    spec.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(yaml.safe_dump(spec))
    return path


def serving_snapshot(serving_dir: Path) -> dict[str, str]:
    """Every file under the serving folder with a hash of its bytes (to prove nothing changed)."""
    if not serving_dir.exists():
        return {}
    return {
        str(path.relative_to(serving_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(serving_dir.rglob("*"))
        if path.is_file()
    }


def versions(serving_dir: Path) -> list[str]:
    """The versions TF Serving can see: numbered folders (not current.json, not `.incoming-*`)."""
    if not serving_dir.exists():
        return []
    return sorted(p.name for p in serving_dir.iterdir() if p.is_dir() and p.name.isdigit())


def output_uri(paths, spec, node: str, key: str) -> Path:
    """Where the latest run's `node` wrote its output `key`."""
    from pipelines.workflow import results, training

    summary = results.latest_run(paths.metadata_config(), training.pipeline_name(spec))
    assert summary is not None and node in summary.outputs, (node, summary and summary.states)
    return Path(summary.outputs[node][key][0])


def cli_run(
    spec_path: Path,
    home: Path,
    timeout: float = 1200,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """`python -m pipelines run` as a user types it (with `options`), in a process of its own
    (environment `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--config", str(spec_path), "--home", str(home), *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


# A free-text column the spec does not name: the run must ignore it, with a recorded warning.
EXTRA_COLUMN = "driver_notes"
SERVED_ROWS = 2500


@dataclass(frozen=True)
class ServedRun:
    """The first run of a home, kept as it was: later tests may run again in that home."""

    spec_path: Path
    source: Path
    spec: object  # components.core.spec.ProblemSpec
    paths: object  # pipelines.paths.RunPaths
    summary: object  # pipelines.workflow.results.RunSummary of the first run
    stdout: str
    versions: list[str]
    gate_predictions: Path  # the gate's saved test predictions of the first run


def serve_taxi(folder: Path, header: list[str], rows: list[dict[str, str]]) -> ServedRun:
    """`pipelines run` (the CLI) on real taxi trips with an extra column, into a fresh home."""
    from components.core.spec import load_spec
    from pipelines.paths import RunPaths, pipeline_name
    from pipelines.workflow import results

    noted = [dict(row, **{EXTRA_COLUMN: f"trip {i}, all fine"}) for i, row in enumerate(rows)]
    source = write_table(folder / "data.csv", [*header, EXTRA_COLUMN], noted)
    spec_path = write_taxi_spec(folder, source)
    spec = load_spec(spec_path)
    paths = RunPaths.for_spec(spec.name, folder / "home")
    done = cli_run(spec_path, paths.home)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = results.latest_run(paths.metadata_config(), pipeline_name(spec))
    gate = Path(summary.outputs["DumbBaselineGate"]["test_predictions"][0])
    return ServedRun(spec_path, source, spec, paths, summary, done.stdout, versions(paths.serving_dir), gate)


def served_classes(paths, spec, rows: list[dict[str, str]]) -> dict:
    """The pushed version's serving_default on `rows` (CSV cells as text, typed as the run's raw schema):
    its outputs as Python lists (text decoded), and the class names its manifest lists."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.core.artifacts import SERVING_SIGNATURE
    from components.core.models_config import read_manifest
    from components.scoring.examples import to_tf_example

    raw_spec = tft.TFTransformOutput(
        str(output_uri(paths, spec, "Transform", "transform_graph"))
    ).raw_feature_spec()
    version_dir = paths.serving_dir / versions(paths.serving_dir)[-1]
    signature = tf.saved_model.load(str(version_dir)).signatures[SERVING_SIGNATURE]
    outputs = signature(examples=tf.constant([to_tf_example(row, raw_spec) for row in rows]))

    def plain(value: tf.Tensor) -> list:
        if value.dtype == tf.string:
            return np.char.decode(value.numpy().astype(bytes), "utf-8").tolist()
        return value.numpy().tolist()

    return {
        "outputs": {name: plain(value) for name, value in outputs.items()},
        "manifest_classes": read_manifest(str(version_dir)).get("classes"),
    }


@dataclass(frozen=True)
class PageAnswer:
    """What the TF.js page answered for one row."""

    predicted: str  # the class it names as the data writes it ("" for none)
    scores: list[float]  # the model's outputs
    text: str  # the answer as the page words it


def page_predictions(serving_dir: Path, inputs: dict[str, np.ndarray]) -> list[PageAnswer]:
    """Each row of `inputs` (raw-signature arrays) typed into the TF.js page of the model served from
    `serving_dir`, in headless Chromium. Checks that the page loaded the version in service, that its form
    is the one `page.json` describes (`check_page_form`), that the fill button fills a real test row, and
    that it asked nothing beyond the loopback server."""
    from playwright.sync_api import sync_playwright

    from components.core.models_config import read_current
    from pipelines.ops import page_server
    from tests.helpers.data import ARTIFACTS

    server = page_server.start(serving_dir.parent)
    port = server.server_address[1]
    outside: list[str] = []
    shown = []
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page()
            page.on("request", lambda r: outside.append(r.url) if "127.0.0.1" not in r.url else None)
            page.goto(f"http://127.0.0.1:{port}/index.html?model={serving_dir.name}")
            page.wait_for_selector("#predict", timeout=60_000)
            current = read_current(serving_dir.parent, serving_dir.name)
            assert page.locator("#status").get_attribute("data-version") == str(current["version"])
            metadata = served_page_metadata(serving_dir, current)
            check_page_form(page, metadata)
            check_fill_button(page, metadata)
            for index in range(len(next(iter(inputs.values())))):
                for name, values in inputs.items():
                    value = values[index, 0]
                    text = "" if (isinstance(value, float | np.floating) and np.isnan(value)) else str(value)
                    _type_into(page, name, text)
                shown.append(_submitted(page))
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"tfjs-page-{serving_dir.name}.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    assert outside == []  # no network beyond the loopback server
    return shown


def served_page_metadata(serving_dir: Path, current: dict) -> dict:
    """The `page.json` the ModelExporter wrote beside the TF.js model in service."""
    import json

    from components.core.artifacts import PAGE_FILE

    tfjs = next(t for t in current["manifest"]["targets"] if t["target"] == "tfjs" and t["pushed"])
    path = serving_dir / str(current["version"]) / tfjs["path"] / PAGE_FILE
    assert path.is_file(), f"{path} is missing: the page cannot show vocabularies or test rows"
    return json.loads(path.read_text())


def check_page_form(page, metadata: dict) -> None:
    """One labelled field per feature in the spec's order: a select list of the vocabulary (after
    "(missing)") for a categorical feature, a box with the typical value as placeholder otherwise."""
    features = metadata["features"]
    labels = page.locator("#features label").all_inner_texts()
    assert labels == [f["column"] for f in features]
    for feature in features:
        field = page.locator(f"#{feature['input']}")
        assert page.locator(f"label[for='{feature['input']}']").inner_text() == feature["column"]
        if feature["kind"] == "categorical":
            assert field.evaluate("e => e.tagName") == "SELECT", feature["column"]
            options = field.evaluate("e => Array.from(e.options).map(o => o.value)")
            assert options == ["", *feature["vocabulary"]] and len(options) > 1, feature["column"]
            assert field.evaluate("e => e.options[0].textContent") == "(missing)"
        elif feature["typical"] is not None:
            assert field.get_attribute("placeholder") == f"e.g. {_js_text(feature['typical'])}"


def check_fill_button(page, metadata: dict) -> None:
    """The fill button puts the first real test row into the form, names it, and the page answers it."""
    row = metadata["test_rows"][0]
    page.evaluate("document.getElementById('prediction').value = 'waiting'")
    page.click("#fill")
    page.wait_for_function("document.getElementById('prediction').value !== 'waiting'", timeout=30_000)
    for feature in metadata["features"]:
        value = row["values"][feature["input"]]
        assert page.locator(f"#{feature['input']}").input_value() == _js_text(value), feature["column"]
    note = page.locator("#row-note").inner_text()
    assert note.startswith(f"Test row 1 of {len(metadata['test_rows'])}; what really happened: "), note
    assert page.locator("#prediction").get_attribute("data-scores"), page.locator("#prediction").inner_text()


def _js_text(value) -> str:
    """A JSON value as JavaScript writes it in a form field: 12.0 -> "12", None -> ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _type_into(page, name: str, text: str) -> None:
    """Types a field, or picks a select list's option; a category the list lacks is added as the fill
    button adds one (a test row may hold a value the training split never had)."""
    field = page.locator(f"#{name}")
    if field.evaluate("e => e.tagName") != "SELECT":
        page.fill(f"#{name}", text)
        return
    field.evaluate(
        "(e, v) => { if (![...e.options].some(o => o.value === v)) e.append(new Option(v + ' (new)', v)); }",
        text,
    )
    field.select_option(value=text)


def _submitted(page) -> PageAnswer:
    import json

    page.evaluate("document.getElementById('prediction').value = 'waiting'")
    page.click("#predict")
    page.wait_for_function("document.getElementById('prediction').value !== 'waiting'", timeout=30_000)
    output = page.locator("#prediction")
    scores = output.get_attribute("data-scores")
    assert scores, page.evaluate("document.getElementById('prediction').value")
    text = page.evaluate("document.getElementById('prediction').value")
    return PageAnswer(output.get_attribute("data-predicted-class") or "", json.loads(scores), text)


def spoken_percent(probability: float) -> str:
    """A probability as the page words it."""
    if probability < 0.01:
        return "under 1%"
    if probability > 0.99:
        return "over 99%"
    return f"{math.floor(probability * 100 + 0.5)}%"  # JavaScript's Math.round: halves up


# The run with every deployment target (tests/conftest.py::every_target_run).
# Wide enough that weights, not the graph's structure (about 35 kB of ops and tensor records), make up
# most of the TFLite file: that is when int8 weights can shrink the file to a third.
WIDE_TRAINING = {"hidden_units": [512, 256], "epochs": 4, "steps_per_epoch": 40}
TARGET_SPARSITY = 0.5
DATETIME_COLUMN = "trip_start_timestamp"  # Unix seconds of the trip's start (local time, written as UTC)
EVERY_TARGET = {
    "tflite": ["float32", "dynamic", "int8"],
    "tfjs": ["float32", "uint8"],
    "pruning": {"target_sparsity": TARGET_SPARSITY, "epochs": 1},
    "parity": {"tolerance": 0.01, "latency_calls": 20},
}


@dataclass(frozen=True)
class PipelineRun:
    """A run made once per session: its spec (file and loaded), home and summary."""

    spec_path: Path
    spec: object  # components.core.spec.ProblemSpec
    paths: object  # pipelines.paths.RunPaths
    summary: object  # pipelines.workflow.results.RunSummary


def every_target_run(folder: Path, source: Path) -> PipelineRun:
    """The taxi spec on `source`, wide, pruned, with the trip's start as a date-time feature (its hour,
    weekday, month and elapsed time, computed inside every target), built for every deployment target."""
    from components.core.spec import load_spec
    from pipelines.ops.cli import run_training
    from pipelines.paths import RunPaths

    spec_path = write_taxi_spec(folder / "spec", source)
    raw = yaml.safe_load(spec_path.read_text())
    raw["training"].update(WIDE_TRAINING)
    raw["deployment"] = EVERY_TARGET
    raw["features"][DATETIME_COLUMN] = "datetime"
    raw["exclude"] = [name for name in raw["exclude"] if name != DATETIME_COLUMN]
    raw["preprocessing"]["datetime_elapsed"] = True
    spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path)
    paths = RunPaths.for_spec(spec.name, folder / "home")
    summary = run_training(spec, paths.home)
    assert summary.pushed_new, "the model was not pushed; nothing to check"
    return PipelineRun(spec_path, spec, paths, summary)
