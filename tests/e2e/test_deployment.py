"""Every deployment target, built by the pipeline and checked in its own runtime: TF Serving's SavedModel,
TFLite (float32, dynamic-range, int8; builtin ops only), TF.js (Node and a real headless Chromium),
pruning, the push manifest and rollback across every target."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.lite.python import schema_py_generated as tflite_schema
from tfx.utils import path_utils

from components.atomic_pusher.executor import build_manifest, publish_atomically, stage_device_targets
from components.core import models_config
from components.core.artifacts import (
    PAGE_FILE,
    PREDICTIONS_KEY,
    RAW_SIGNATURE,
    SERVING_SIGNATURE,
    read_targets,
)
from components.core.models_config import target_name
from components.core.sources import read_table
from components.core.spec import DeploymentSpec
from components.modules.signatures import model_variables
from components.scoring.examples import to_raw_inputs, to_tf_example
from components.scoring.runtimes import TfjsNodeRuntime, TFLiteRuntime
from pipelines.ops import cli
from pipelines.paths import RunPaths
from pipelines.workflow.results import RunSummary
from tests.helpers.executors import export, push
from tests.helpers.pipeline_runs import (
    DATETIME_COLUMN,
    TARGET_SPARSITY,
    page_predictions,
    serving_snapshot,
    spoken_percent,
    write_taxi_spec,
)

pytestmark = pytest.mark.e2e

ALL_TARGETS = {"serving", "tflite-float32", "tflite-dynamic", "tflite-int8", "tfjs-float32", "tfjs-uint8"}


@pytest.fixture(scope="module")
def spec(every_target_run):
    """The taxi spec, wide and pruned, with the trip's start as a date-time feature, built for every target
    (tests/helpers/pipeline_runs.py::every_target_run; the predict and status tests share its run)."""
    return every_target_run.spec


@pytest.fixture(scope="module")
def run(every_target_run):
    return every_target_run.summary


@pytest.fixture(scope="module")
def paths(every_target_run) -> RunPaths:
    return every_target_run.paths


@pytest.fixture(scope="module")
def version_dir(run, paths) -> Path:
    return paths.serving_dir / run.pushed_version


@pytest.fixture(scope="module")
def manifest(version_dir) -> dict:
    return json.loads((version_dir / "manifest.json").read_text())


def by_name(manifest: dict) -> dict[str, dict]:
    return {target_name(t): t for t in manifest["targets"]}


@pytest.fixture(scope="module")
def test_rows(run, taxi_slice, version_dir):
    """Raw inputs of 200 real trips, and the SavedModel's predictions for them."""
    signature = tf.saved_model.load(str(version_dir)).signatures[RAW_SIGNATURE]
    dtypes = {name: s.dtype for name, s in signature.structured_input_signature[1].items()}
    raw_spec = tft.TFTransformOutput(run.outputs["Transform"]["transform_graph"][0]).raw_feature_spec()
    _, rows = read_table(taxi_slice)
    inputs = to_raw_inputs(rows[-200:], dtypes, raw_spec)
    expected = signature(**{k: tf.constant(v) for k, v in inputs.items()})[PREDICTIONS_KEY].numpy()
    return rows[-200:], inputs, expected


def test_the_date_time_feature_is_the_trips_hour_weekday_and_month(run, test_rows):
    """TF Transform's parts of trip_start_timestamp agree with the table's own hour and month columns and
    with Python's calendar, row by row; the targets compute the same parts (their predictions are checked
    against the SavedModel's below)."""
    rows, _, _ = test_rows
    transform = tft.TFTransformOutput(run.outputs["Transform"]["transform_graph"][0])
    raw_spec = transform.raw_feature_spec()
    examples = tf.constant([to_tf_example(row, raw_spec) for row in rows])
    parts = transform.transform_raw_features(
        tf.io.parse_example(examples, raw_spec), drop_unused_features=True
    )
    seconds = [int(row[DATETIME_COLUMN]) for row in rows]
    moments = [datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=s) for s in seconds]
    hours = parts[f"{DATETIME_COLUMN}_hour"].numpy().ravel() - 1
    assert hours.tolist() == [int(row["trip_start_hour"]) for row in rows] == [m.hour for m in moments]
    months = parts[f"{DATETIME_COLUMN}_month"].numpy().ravel()
    assert months.tolist() == [int(row["trip_start_month"]) for row in rows]
    weekdays = parts[f"{DATETIME_COLUMN}_weekday"].numpy().ravel() - 1
    assert weekdays.tolist() == [m.weekday() for m in moments]
    elapsed = parts[f"{DATETIME_COLUMN}_elapsed"].numpy().ravel()
    assert np.all(np.diff(elapsed[np.argsort(seconds)]) >= 0)  # later trips, larger elapsed time


def test_every_target_is_pushed_in_one_version_with_its_manifest(run, manifest, version_dir, paths):
    targets = by_name(manifest)
    assert set(targets) == ALL_TARGETS
    for name, target in targets.items():
        assert target["pushed"] is True, (name, target["reason"])
        path = version_dir / target["path"]
        assert path.exists(), name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        if name == "serving":  # the SavedModel: the version folder without the device targets
            device = ("tflite", "tfjs", "manifest.json")
            files = [p for p in files if p.relative_to(version_dir).parts[0] not in device]
        files = [p for p in files if p.name != PAGE_FILE]  # the page's metadata, not the model's size
        assert target["size_bytes"] == sum(p.stat().st_size for p in files) > 0, name
        assert target["latency_ms_p50"] > 0 and target["metric"] > 0.7, name
    assert (version_dir / "saved_model.pb").is_file()
    assert manifest["version"] == int(run.pushed_version)
    assert manifest["source"]["pipeline_run_id"] == run.run_id
    assert manifest["spans"] == [0] and manifest["metric"] == "auc" and manifest["test_rows"] > 100
    current = models_config.read_current(paths.serving_dir.parent, paths.serving_dir.name)
    assert current["version"] == int(run.pushed_version) and current["manifest"] == manifest
    assert models_config.current_versions(paths.serving_dir.parent) == {"taxi": int(run.pushed_version)}


def test_float_targets_reproduce_the_savedmodel(manifest):
    targets = by_name(manifest)
    # serving_default (what TF Serving serves) against serving_raw (what the devices are built from)
    assert 0 <= targets["serving"]["max_abs_diff"] <= 1e-5
    for name in ("tflite-float32", "tfjs-float32"):
        assert targets[name]["max_abs_diff"] <= 1e-4, name
        assert targets[name]["metric"] == pytest.approx(targets["serving"]["metric"], abs=1e-4)


def test_quantized_targets_stay_within_the_metric_tolerance(manifest):
    targets = by_name(manifest)
    reference = targets["serving"]["metric"]
    for name in ("tflite-dynamic", "tflite-int8", "tfjs-uint8"):
        assert targets[name]["metric"] >= reference - manifest["tolerance"], name
        assert targets[name]["max_abs_diff"] > 0, name  # really quantized, not a float copy


def test_int8_tflite_is_at_most_a_third_of_float(manifest, version_dir):
    targets = by_name(manifest)
    float_size = (version_dir / targets["tflite-float32"]["path"]).stat().st_size
    int8_size = (version_dir / targets["tflite-int8"]["path"]).stat().st_size
    assert int8_size * 3 <= float_size, (int8_size, float_size)
    model = tflite_schema.ModelT.InitFromPackedBuf((version_dir / "tflite/int8.tflite").read_bytes(), 0)
    kinds = {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    dense = [
        op
        for op in graph.operators
        if kinds[model.operatorCodes[op.opcodeIndex].builtinCode] == "FULLY_CONNECTED"
    ]
    assert dense and all(graph.tensors[op.inputs[1]].type == tflite_schema.TensorType.INT8 for op in dense)
    assert not any(tensor.name for tensor in graph.tensors)  # names stripped; the signature keys remain
    assert [key.signatureKey for key in model.signatureDefs] == [RAW_SIGNATURE.encode()]
    assert all(graph.tensors[op.outputs[0]].type == tflite_schema.TensorType.INT8 for op in dense)


def test_tflite_targets_need_only_builtin_ops(version_dir, test_rows):
    _, inputs, expected = test_rows
    for variant in ("float32", "dynamic", "int8"):
        flatbuffer = (version_dir / "tflite" / f"{variant}.tflite").read_bytes()
        model = tflite_schema.ModelT.InitFromPackedBuf(flatbuffer, 0)
        custom = [code.customCode for code in model.operatorCodes if code.customCode]
        assert custom == [], (variant, custom)  # no Flex (TensorFlow) or custom ops
        # OpResolverType.BUILTIN: TFLite's own kernels, no Flex delegate.
        predictions = TFLiteRuntime(version_dir / "tflite" / f"{variant}.tflite").predict(inputs)
        if variant == "float32":
            assert np.max(np.abs(predictions - expected)) <= 1e-4
        else:  # quantized: close to TF's on average and in the same order (the metric is checked above)
            assert np.mean(np.abs(predictions - expected)) <= 0.05, variant
            assert np.corrcoef(predictions[:, 0], expected[:, 0])[0, 1] >= 0.95, variant


def test_tfjs_in_node_reproduces_tf(version_dir, test_rows):
    _, inputs, expected = test_rows
    predictions, timings = TfjsNodeRuntime(version_dir / "tfjs" / "float32").run(inputs, latency_calls=3)
    assert predictions.shape == expected.shape
    assert np.max(np.abs(predictions - expected)) <= 1e-4
    assert len(timings) == 3
    quantized, _ = TfjsNodeRuntime(version_dir / "tfjs" / "uint8").run(inputs, latency_calls=0)
    assert 0 < np.max(np.abs(quantized - expected)) <= 0.1


def test_tfjs_page_in_chromium_predicts_what_tf_predicts(paths, run, test_rows):
    pytest.importorskip("playwright.sync_api")
    rows, inputs, expected = test_rows
    shown = page_predictions(paths.serving_dir, {name: values[:2] for name, values in inputs.items()})
    for index, answer in enumerate(shown):
        assert answer.scores == pytest.approx([float(expected[index, 0])], abs=1e-4), rows[index]
        assert answer.predicted == ("1" if expected[index, 0] >= 0.5 else "0")  # big_tipper is written 0/1
        spoken = "yes" if answer.predicted == "1" else "no"
        assert answer.text == f"big_tipper: {spoken}, {spoken_percent(answer.scores[0])} probability"


def test_the_page_metadata_lists_the_features_in_the_specs_order_with_real_test_rows(spec, version_dir):
    """page.json beside each pushed TF.js model: what the page needs beyond the graph's signature."""
    tfjs_rows = 0
    for variant in ("float32", "uint8"):
        metadata = json.loads((version_dir / "tfjs" / variant / PAGE_FILE).read_text())
        assert [f["column"] for f in metadata["features"]] == list(spec.feature_columns(list(spec.features)))
        assert metadata["task"] == "binary" and metadata["labels"] == ["big_tipper"]
        assert metadata["classes"] == ["0", "1"] and metadata["class_labels"] == ["no", "yes"]
        kinds = {f["column"]: f for f in metadata["features"]}
        hours = kinds["trip_start_hour"]["vocabulary"]
        assert hours == sorted(hours, key=int) and {"0", "12", "23"} <= set(hours)
        assert "Cash" in kinds["payment_type"]["vocabulary"] and kinds["payment_type"]["typical"] == "Cash"
        assert 3 <= kinds["fare"]["typical"] <= 30 and 0 < kinds["trip_miles"]["typical"] < 10
        assert datetime.datetime.fromisoformat(kinds[DATETIME_COLUMN]["typical"]).year in range(2013, 2017)
        rows = metadata["test_rows"]
        assert all(row["actual"]["big_tipper"] in ("0", "1") for row in rows)
        tfjs_rows = len(rows)
    assert tfjs_rows == 20


def test_pruning_reaches_the_target_sparsity(manifest, version_dir):
    assert manifest["sparsity"]["target"] == TARGET_SPARSITY
    assert manifest["sparsity"]["reached"] == pytest.approx(TARGET_SPARSITY, abs=0.02)
    kernels = [
        v.numpy()
        for v in model_variables(tf.saved_model.load(str(version_dir)))
        if v.name.endswith("kernel:0") and "dense" in v.name
    ]
    assert kernels and all(np.mean(k == 0) == pytest.approx(TARGET_SPARSITY, abs=0.02) for k in kernels)


def test_rollback_returns_the_previous_version_for_every_target(run, paths, tmp_path, taxi_slice):
    """A second push (the same model, as a later run would push), then `pipelines rollback`."""
    home = tmp_path / "home"
    serving_root = home / "serving"
    shutil.copytree(paths.serving_dir.parent, serving_root)
    first = int(run.pushed_version)
    device_uri = run.outputs["ModelExporter"]["device_models"][0]
    targets = read_targets(device_uri)

    def complete(staging: str, version: str) -> None:
        manifest = build_manifest("taxi", version, targets, {"pipeline_run_id": "second"})
        stage_device_targets(device_uri, manifest, staging)
        Path(staging, "manifest.json").write_text(json.dumps(manifest))

    model_dir = run.outputs["Trainer"]["model"][0] + "/Format-Serving"
    second, _ = publish_atomically(model_dir, str(serving_root / "taxi"), complete=complete)
    assert models_config.read_current(serving_root, "taxi")["version"] == int(second)

    spec_path = write_taxi_spec(tmp_path / "spec", taxi_slice)
    assert cli.main(["rollback", "--config", str(spec_path), "--home", str(home)]) == 0

    assert models_config.current_versions(serving_root) == {"taxi": first}
    current = models_config.read_current(serving_root, "taxi")
    assert current["version"] == first and current["reason"] == f"rollback from {second}"
    assert current["manifest"]["version"] == first
    assert current["history"][-1] == {**current["history"][-1], "version": first, "was": int(second)}
    for target in current["manifest"]["targets"]:
        assert (serving_root / "taxi" / str(first) / target["path"]).exists(), target
    assert (serving_root / "taxi" / second / "tflite" / "int8.tflite").is_file()  # nothing deleted


def gated(spec, **deployment):
    """The run's spec with another `deployment` section (validated as a spec file's would be)."""
    section = {**spec.deployment.model_dump(), **deployment}
    return spec.model_copy(update={"deployment": DeploymentSpec.model_validate(section)})


def serving_copy(paths: RunPaths, tmp_path: Path) -> Path:
    """This run's serving folder copied: the executors below push there, the run's own stays as it was."""
    shutil.copytree(paths.serving_dir.parent, tmp_path / "serving")
    return tmp_path / "serving" / paths.serving_dir.name


def test_a_target_over_its_size_budget_or_slower_than_in_service_is_not_pushed(
    run, spec, paths, manifest, tmp_path
):
    """The ModelExporter and the AtomicPusher again on this run's model (nothing is trained): tflite-dynamic
    over its size budget and, against a version in service made to look 1000x faster, over max_slowdown."""
    serving = serving_copy(paths, tmp_path)
    in_service = int(run.pushed_version)
    measured = by_name(manifest)
    served_manifest = serving / str(in_service) / models_config.MANIFEST
    faster = json.loads(served_manifest.read_text())
    for target in faster["targets"]:
        if target_name(target) == "tflite-dynamic":
            target["latency_ms_p50"] /= 1000
    served_manifest.write_text(json.dumps(faster))
    budget_kb = measured["tflite-dynamic"]["size_bytes"] / 2000
    deployment = {
        "tflite": ["float32", "dynamic"],
        "tfjs": [],
        "max_size_kb": {
            "tflite-dynamic": budget_kb,
            "tflite-float32": 10 * measured["tflite-float32"]["size_bytes"],
        },
        "max_latency_ms": {"serving": 10_000},
        "max_slowdown": 50,
    }
    device_dir = tmp_path / "device_models"
    targets = by_name(export(run.outputs, gated(spec, **deployment), device_dir, serving))

    dynamic = targets["tflite-dynamic"]
    assert not dynamic["passed"]
    size = dynamic["size_bytes"] / 1000
    assert f"size {size:.3g} kB is over deployment.max_size_kb = {budget_kb:g} kB" in dynamic["reason"]
    assert f"of version {in_service} in service, over deployment.max_slowdown = 50" in dynamic["reason"]
    assert targets["serving"]["passed"] and targets["tflite-float32"]["passed"], targets

    pushed = push(run.outputs["Trainer"]["model"][0], str(device_dir), serving, tmp_path / "pusher")
    version = pushed.get_string_custom_property("pushed_version")
    assert models_config.versions(serving) == [in_service, int(version)], "one whole version, no staging"
    assert not [p for p in serving.iterdir() if p.name.startswith(".incoming-")]
    assert models_config.current_versions(serving.parent) == {serving.name: int(version)}
    pushed_targets = by_name(models_config.read_manifest(serving / version))
    assert pushed_targets["tflite-dynamic"]["pushed"] is False
    assert pushed_targets["tflite-dynamic"]["reason"] == dynamic["reason"]
    assert pushed_targets["serving"]["pushed"] and pushed_targets["tflite-float32"]["pushed"]
    assert (serving / version / "tflite" / "float32.tflite").is_file()
    assert not (serving / version / "tflite" / "dynamic.tflite").exists()


def test_a_savedmodel_over_its_latency_budget_pushes_nothing_and_the_summary_says_why(
    run, spec, paths, tmp_path
):
    serving = serving_copy(paths, tmp_path)
    before = serving_snapshot(serving.parent)
    device_dir = tmp_path / "device_models"
    slow = gated(spec, tflite=["float32"], tfjs=[], max_latency_ms={"serving": 0.001})
    targets = by_name(export(run.outputs, slow, device_dir, serving))
    savedmodel, device = targets["serving"], targets["tflite-float32"]
    p50 = savedmodel["latency_ms_p50"]
    assert not savedmodel["passed"] and not device["passed"]
    assert savedmodel["reason"] == f"p50 latency {p50:.3g} ms is over deployment.max_latency_ms = 0.001 ms"
    assert device["reason"].startswith(f"the SavedModel is not pushed ({savedmodel['reason']})")

    pushed = push(run.outputs["Trainer"]["model"][0], str(device_dir), serving, tmp_path / "pusher")
    assert pushed.get_int_custom_property("pushed") == 0
    assert serving_snapshot(serving.parent) == before, "nothing pushed, the version in service serves"

    summary = RunSummary(
        "blueprint-taxi", "run", outputs={"ModelExporter": {"device_models": [str(device_dir)]}}
    )
    summary.blessed = True
    table = "\n".join(cli.refused_targets(summary))
    assert f"no: {savedmodel['reason']}" in table and "tflite-float32" in table


SIGNATURE_SHIFT = 0.03


def shifted_serving_default(model_uri: str, destination: Path) -> str:
    """A copy of a Trainer's model whose `serving_default` predicts SIGNATURE_SHIFT more than its raw-feature
    signature on every row (a Transform graph and a raw signature that disagree, as the bucket-edge bug
    made them): the SavedModel's ranking, and so its AUC, is unchanged."""
    shutil.copytree(model_uri, destination)
    serving_dir = Path(path_utils.serving_model_path(str(destination)))
    loaded = tf.saved_model.load(str(serving_dir))
    served = loaded.signatures[SERVING_SIGNATURE]

    @tf.function(input_signature=list(served.structured_input_signature[1].values()))
    def shifted(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = served(examples=examples)
        return {**outputs, PREDICTIONS_KEY: outputs[PREDICTIONS_KEY] + SIGNATURE_SHIFT}

    resaved = destination / "resaved"
    signatures = {SERVING_SIGNATURE: shifted, RAW_SIGNATURE: loaded.signatures[RAW_SIGNATURE]}
    tf.saved_model.save(loaded, str(resaved), signatures=signatures)
    if (serving_dir / "assets.extra").is_dir():  # the class names
        shutil.copytree(serving_dir / "assets.extra", resaved / "assets.extra")
    shutil.rmtree(serving_dir)
    resaved.rename(serving_dir)
    return str(destination)


def test_device_targets_are_not_pushed_when_the_raw_signature_disagrees_with_serving_default(
    run, spec, paths, tmp_path
):
    """The exporter's signature gate on a whole export: the SavedModel still serves (it is what the
    Evaluator blessed), its row says how far the two signatures are apart, and no device target built
    from the raw signature is pushed."""
    model = shifted_serving_default(run.outputs["Trainer"]["model"][0], tmp_path / "model")
    outputs = {**run.outputs, "Trainer": {"model": [model]}}
    serving = serving_copy(paths, tmp_path)
    device_dir = tmp_path / "device_models"
    targets = by_name(export(outputs, gated(spec, tflite=["float32"], tfjs=[]), device_dir, serving))
    savedmodel, device = targets["serving"], targets["tflite-float32"]
    assert savedmodel["passed"], savedmodel
    assert savedmodel["max_abs_diff"] == pytest.approx(SIGNATURE_SHIFT, abs=1e-5)
    assert not device["passed"]
    assert device["reason"].startswith(
        f"the raw-feature signature it is built from predicts {SIGNATURE_SHIFT:.4g} away from serving_default"
    ), device["reason"]
    assert device["max_abs_diff"] < 1e-4, "the TFLite model itself matches the signature it was built from"

    pushed = push(model, str(device_dir), serving, tmp_path / "pusher")
    version = pushed.get_string_custom_property("pushed_version")
    pushed_targets = by_name(models_config.read_manifest(serving / version))
    assert pushed_targets["serving"]["pushed"] and pushed_targets["tflite-float32"]["pushed"] is False
    assert pushed_targets["tflite-float32"]["reason"] == device["reason"]
    assert not (serving / version / "tflite").exists()
