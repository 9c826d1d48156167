"""The whole TFX training pipeline on real taxi trips: run, cache, signatures, bad data, gate.

The first run is the session's served run (tests/conftest.py::served_taxi, through the CLI); the tests
here run again in its home, and compare with what its first run left."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.core import models_config
from components.core.artifacts import (
    PREDICTIONS_KEY,
    RAW_SIGNATURE,
    SERVING_SIGNATURE,
)
from components.core.sources import read_table, write_table
from components.core.spec import load_spec
from components.scoring.examples import to_raw_inputs, to_tf_example
from pipelines.ops.cli import RunFailed, run_training
from pipelines.paths import RunPaths
from pipelines.workflow import results, training
from tests.helpers.data import REPO_ROOT
from tests.helpers.pipeline_runs import (
    COMPONENT_NODES,
    SMALL_TRAINING,
    cli_run,
    serving_snapshot,
    versions,
    write_taxi_spec,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]


@pytest.fixture(scope="module")
def home(served_taxi) -> Path:
    return served_taxi.paths.home


@pytest.fixture(scope="module")
def spec(served_taxi):
    return served_taxi.spec


@pytest.fixture(scope="module")
def first_run(served_taxi):
    return served_taxi.summary


@pytest.fixture(scope="module")
def paths(served_taxi) -> RunPaths:
    return served_taxi.paths


def complete_executions(paths: RunPaths, spec) -> dict[str, int]:
    """Per component (resolvers aside: they run every time), how many executions completed in the home."""
    store = results.open_store(paths.metadata_config())
    by_node = results.executions_by_node(store, training.pipeline_name(spec))
    return {
        node: sum(1 for e in executions if results._STATE_NAMES[e.last_known_state] == "COMPLETE")
        for node, executions in by_node.items()
        if node in COMPONENT_NODES
    }


def executions_in_run(paths: RunPaths, spec, run_id: str) -> dict[str, int]:
    """Per node, how many executions the pipeline run `run_id` recorded (in any state)."""
    store = results.open_store(paths.metadata_config())
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    node_of = results._node_names(
        store, store.get_executions_by_context(run.id), training.pipeline_name(spec)
    )
    return dict(Counter(node_of.values()))


def test_every_component_executed_exactly_once(first_run, paths, spec):
    counts = executions_in_run(paths, spec, first_run.run_id)
    for node in COMPONENT_NODES:
        assert counts.get(node) == 1 and first_run.states[node] == "COMPLETE", (node, counts)


def test_model_is_blessed_and_pushed_atomically(first_run, paths):
    assert first_run.blessed is True
    assert first_run.pushed is True and first_run.pushed_new is True
    assert first_run.metrics["auc"] >= 0.7
    (version,) = versions(paths.serving_dir)
    assert version == first_run.pushed_version and version.isdigit()
    assert (paths.serving_dir / version / "saved_model.pb").is_file()
    assert Path(first_run.pushed_path) == paths.serving_dir / version
    served = models_config.current_versions(paths.serving_dir.parent)
    assert served == {paths.serving_dir.name: int(version)}, "TF Serving's models.config pins the push"
    manifest = models_config.read_manifest(paths.serving_dir / version)
    built = {(t["target"], t["variant"]) for t in manifest["targets"]}
    assert built == {("serving", "savedmodel"), ("tflite", "float32")}, "only what the spec's deployment asks"
    assert sorted(p.name for p in (paths.serving_dir / version / "tflite").iterdir()) == ["float32.tflite"]


def test_pushed_model_answers_both_signatures_alike(first_run, paths, taxi_slice):
    model = tf.saved_model.load(str(paths.serving_dir / first_run.pushed_version))
    assert {SERVING_SIGNATURE, RAW_SIGNATURE} <= set(model.signatures)
    transform_uri = first_run.outputs["Transform"]["transform_graph"][0]
    raw_spec = tft.TFTransformOutput(transform_uri).raw_feature_spec()
    _, rows = read_table(taxi_slice)
    rows = rows[:200]  # includes trips with missing coordinates and community areas

    examples = tf.constant([to_tf_example(row, raw_spec) for row in rows])
    by_example = model.signatures[SERVING_SIGNATURE](examples=examples)[PREDICTIONS_KEY].numpy()

    raw_signature = model.signatures[RAW_SIGNATURE]
    dtypes = {name: spec.dtype for name, spec in raw_signature.structured_input_signature[1].items()}
    assert "tips" not in dtypes and "big_tipper" not in dtypes
    raw_inputs = to_raw_inputs(rows, dtypes, raw_spec)
    by_raw = raw_signature(**{k: tf.constant(v) for k, v in raw_inputs.items()})[PREDICTIONS_KEY].numpy()

    assert by_example.shape == by_raw.shape == (len(rows), 1)
    assert np.all((by_example >= 0) & (by_example <= 1))
    assert np.max(np.abs(by_example - by_raw)) < 1e-5
    assert np.std(by_example) > 0.01  # the model tells trips apart


def test_raw_signature_runs_in_tflite_with_builtin_ops_one_row_at_a_time(first_run, paths, taxi_slice):
    """The raw signature is what devices get: it converts with TFLite builtins only, and a fresh
    interpreter's first call with a single row (batch 1, the converter's default shape) answers like TF."""
    saved_model = str(paths.serving_dir / first_run.pushed_version)
    raw_signature = tf.saved_model.load(saved_model).signatures[RAW_SIGNATURE]
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[RAW_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    transform_uri = first_run.outputs["Transform"]["transform_graph"][0]
    raw_spec = tft.TFTransformOutput(transform_uri).raw_feature_spec()
    dtypes = {name: spec.dtype for name, spec in raw_signature.structured_input_signature[1].items()}
    _, rows = read_table(taxi_slice)
    for row in rows[:5]:
        inputs = to_raw_inputs([row], dtypes, raw_spec)
        interpreter = tf.lite.Interpreter(
            model_content=flatbuffer,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN,
        )
        by_tflite = interpreter.get_signature_runner(RAW_SIGNATURE)(**inputs)[PREDICTIONS_KEY]
        by_tf = raw_signature(**{k: tf.constant(v) for k, v in inputs.items()})[PREDICTIONS_KEY].numpy()
        assert by_tflite.shape == (1, 1)
        assert abs(float(by_tflite[0, 0]) - float(by_tf[0, 0])) < 1e-4


def test_second_run_without_changes_executes_and_pushes_nothing(first_run, spec, home, paths):
    before = serving_snapshot(paths.serving_dir)
    counts_before = complete_executions(paths, spec)
    second = run_training(spec, home)
    assert [n for n in second.executed if n in COMPONENT_NODES] == []
    assert set(second.cached) >= set(COMPONENT_NODES)
    assert complete_executions(paths, spec) == counts_before, "the second run executed a component"
    assert second.pushed_new is False
    assert serving_snapshot(paths.serving_dir) == before


# What libraries print, never on the console of a run: TensorFlow's CUDA factory errors and native
# log lines (absl's C++ prefixes), the TF.js converter, absl's Python records, Keras's epochs.
CHATTER = ("cuFFT", "cuDNN", "cuBLAS", "auto converted", "W0000", "I0000", "absl", "Epoch ", "Traceback")
PROGRESS_LINE = re.compile(r"^\[\s*\d+\.\ds\] (\w+): ")


def run_log_of(stdout: str) -> Path:
    """The run's log, as the summary names it."""
    line = next(line for line in stdout.splitlines() if line.startswith("  log:"))
    return Path(line.split()[1])


def test_the_cli_shows_one_line_per_component_and_logs_what_the_libraries_print(served_taxi):
    stdout = served_taxi.stdout
    for chatter in CHATTER:
        assert chatter not in stdout, (chatter, stdout)
    before_summary = stdout.split("\nRun ")[0].splitlines()
    progress = [line for line in before_summary if PROGRESS_LINE.match(line)]
    header = [line for line in before_summary if not PROGRESS_LINE.match(line)]
    assert all(line.startswith(("Blueprint:", "  ", "warning:")) for line in header), header
    finished = [PROGRESS_LINE.match(line)[1] for line in progress if ": finished (" in line]
    assert sorted(finished) == sorted(COMPONENT_NODES), progress  # one line each, resolvers aside
    assert {PROGRESS_LINE.match(line)[1] for line in progress} <= set(COMPONENT_NODES), progress
    trainer = next(line for line in progress if "Trainer: finished" in line)
    assert re.search(r"\d+ epochs, val_auc 0\.\d{4}$", trainer), trainer
    log = run_log_of(stdout)
    assert log.parent == served_taxi.paths.home / "logs" / served_taxi.spec.name
    text = log.read_text()
    assert "Component Transform is finished" in text  # TFX's absl records
    assert "Epoch 1/" in text  # Keras's Python prints
    assert "W0000" in text and "tf_tfl_flatbuffer_helpers" in text  # the TFLite converter's C++ log
    assert "---- Blueprint" in text and "Trainer: finished" in text  # where each component ends
    # Beam got TFX's package from the run: no component built it again (settings.tfx_dependency_args).
    assert "Attempting to infer TFX Python dependency" not in text


def test_verbose_shows_the_log_live(first_run, served_taxi, paths):
    """A second run of the served spec (every component cached) with --verbose: what goes to the log
    is on the console as well."""
    before = serving_snapshot(paths.serving_dir)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--config", str(served_taxi.spec_path)]
        + ["--home", str(paths.home), "--verbose"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = run_log_of(done.stdout)
    assert log != run_log_of(served_taxi.stdout), "each run has a log of its own"
    text = log.read_text()
    for line in ("Component Transform is finished", "---- Blueprint", "Transform: finished (cached"):
        assert line in text and line in done.stdout, line
    assert serving_snapshot(paths.serving_dir) == before


def editable_slice(taxi_rows) -> tuple[list[str], list[dict]]:
    header, rows = taxi_rows
    return header, [dict(row) for row in rows[:3000]]


def _run_on(tmp_path: Path, rows: list[dict], header: list[str], home: Path) -> RunFailed:
    source = write_table(tmp_path / "data.csv", header, rows)
    spec = load_spec(write_taxi_spec(tmp_path, source))
    with pytest.raises(RunFailed) as failure:
        run_training(spec, home)
    return failure.value


def test_column_of_the_wrong_type_stops_before_training(first_run, taxi_rows, home, paths, spec, tmp_path):
    before = serving_snapshot(paths.serving_dir)
    header, rows = editable_slice(taxi_rows)
    for row in rows[::7]:
        row["fare"] = "about ten dollars"
    failure = _run_on(tmp_path, rows, header, home)
    message = str(failure)
    assert "ExampleValidator" in message and "column 'fare'" in message
    assert "nothing is trained or pushed" in message
    counts = complete_executions(paths, spec)
    assert counts["Transform"] == 1 and counts["Trainer"] == 1  # only the first run's
    assert serving_snapshot(paths.serving_dir) == before


def test_rows_without_a_label_stop_before_training(first_run, taxi_rows, home, paths, spec, tmp_path):
    before = serving_snapshot(paths.serving_dir)
    header, rows = editable_slice(taxi_rows)
    for row in rows[::50]:
        row["big_tipper"] = ""
    message = str(_run_on(tmp_path, rows, header, home))
    assert "column 'big_tipper'" in message
    assert complete_executions(paths, spec)["Trainer"] == 1
    assert serving_snapshot(paths.serving_dir) == before


def test_csv_missing_the_label_column_is_refused_by_the_cli(first_run, taxi_rows, home, paths, tmp_path):
    before = serving_snapshot(paths.serving_dir)
    header, rows = taxi_rows
    kept = [c for c in header if c != "big_tipper"]
    source = write_table(tmp_path / "data.csv", kept, [{c: r[c] for c in kept} for r in rows[:500]])
    spec_path = write_taxi_spec(tmp_path, source)
    done = cli_run(spec_path, home, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "field 'label'" in done.stderr and "'big_tipper' is not in the data" in done.stderr
    assert "Traceback" not in done.stderr
    assert serving_snapshot(paths.serving_dir) == before


def test_model_below_the_metric_threshold_is_not_pushed(first_run, served_taxi, home, paths, tmp_path):
    """The served run's data with a threshold no model reaches: the data steps come from the cache (the
    Trainer runs again: the metric is part of the spec it is given)."""
    before = serving_snapshot(paths.serving_dir)
    spec = load_spec(write_taxi_spec(tmp_path, served_taxi.source, threshold=0.999))
    summary = run_training(spec, home)
    assert "Evaluator" in summary.executed and "Transform" in summary.cached
    assert summary.blessed is False
    assert summary.pushed is False
    assert any("auc" in failure and "0.999" in failure for failure in summary.validation_failures)
    assert versions(paths.serving_dir) == served_taxi.versions
    assert serving_snapshot(paths.serving_dir) == before
    device_models = Path(summary.outputs["ModelExporter"]["device_models"][0])
    assert json.loads((device_models / "targets.json").read_text())["exported"] is False
    assert sorted(p.name for p in device_models.iterdir()) == ["targets.json"]  # nothing converted


@pytest.mark.parametrize("steps", [1, 3, 6])
def test_a_truncated_training_budget_is_never_pushed(first_run, served_taxi, home, paths, tmp_path, steps):
    """A worse candidate over the same data: it clears the metric's floor, not the model in production."""
    before = serving_snapshot(paths.serving_dir)
    budget = dict(SMALL_TRAINING, epochs=1, steps_per_epoch=steps)
    truncated = load_spec(write_taxi_spec(tmp_path, served_taxi.source, threshold=0.5, training=budget))
    summary = run_training(truncated, home)
    assert "Trainer" in summary.executed and "Transform" in summary.cached, "only training changed"
    assert summary.blessed is False and summary.pushed is False
    assert any(failure.startswith("auc") for failure in summary.validation_failures), (
        summary.validation_failures
    )
    assert serving_snapshot(paths.serving_dir) == before
