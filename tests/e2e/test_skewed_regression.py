"""A skewed regression label on a log scale, and numeric features as quantile buckets, on every target.

The taxi fare (dollars: median 7.85, mean 11.77, up to 700; skewness 15.8) as the label of a regression
trained on log(1 + fare), with each numeric feature's training-quantile bucket embedded beside its z-score.
Every target (SavedModel, TFLite float32 and int8, TF.js float32) must answer in dollars and agree with
the SavedModel. 8-bit weights err by a few percent on log(1 + fare), which is a few percent of the fare:
the parity tolerance here is 15% of the SavedModel's MAE (TFLite int8 loses about 4%, TF.js uint8 about 8%).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.lite.python import schema_py_generated as tflite_schema

from components.core.artifacts import PREDICTIONS_KEY, RAW_SIGNATURE
from components.core.models_config import target_name
from components.core.sources import read_table
from components.core.spec import TaskType, load_spec
from components.scoring.examples import to_raw_inputs
from components.scoring.runtimes import TfjsNodeRuntime, TFLiteRuntime
from pipelines.ops.cli import run_training
from pipelines.paths import RunPaths
from tests.helpers.pipeline_runs import write_taxi_spec

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("skewed-fare")]

LABEL = "fare"
TOLERANCE = 0.15
NUMERIC_FEATURES = {
    "trip_miles",
    "trip_seconds",
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory, taxi_slice):
    path = write_taxi_spec(tmp_path_factory.mktemp("spec"), taxi_slice)
    taxi = load_spec(path)
    features = {name: kind for name, kind in taxi.features.items() if name != LABEL}
    return taxi.model_copy(
        update={
            "name": "taxi_fare",
            "label": LABEL,
            "task": TaskType.REGRESSION,
            "metric": taxi.metric.model_copy(update={"name": "mae", "threshold": 10.0}),
            "features": features,
            "exclude": [*taxi.exclude, "big_tipper"],
            "evaluation": taxi.evaluation.model_copy(update={"baseline_margin": 0.0}),
            "training": taxi.training.model_copy(
                update={"label_scale": "log", "numeric_encoding": "buckets"}
            ),
            "deployment": taxi.deployment.model_validate(
                {
                    "tflite": ["float32", "int8"],
                    "tfjs": ["float32"],
                    "parity": {"tolerance": TOLERANCE},
                }
            ),
        }
    )


@pytest.fixture(scope="module")
def run(spec, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    summary = run_training(spec, home)
    assert summary.pushed_new, summary.power_message
    return summary, RunPaths.for_spec(spec.name, home)


@pytest.fixture(scope="module")
def version_dir(run) -> Path:
    summary, paths = run
    return paths.serving_dir / summary.pushed_version


@pytest.fixture(scope="module")
def test_rows(run, taxi_slice, version_dir):
    """Raw inputs of the last 300 trips, their fares, and the SavedModel's predictions for them."""
    summary, _ = run
    signature = tf.saved_model.load(str(version_dir)).signatures[RAW_SIGNATURE]
    dtypes = {name: s.dtype for name, s in signature.structured_input_signature[1].items()}
    raw_spec = tft.TFTransformOutput(summary.outputs["Transform"]["transform_graph"][0]).raw_feature_spec()
    _, rows = read_table(taxi_slice)
    rows = rows[-300:]
    inputs = to_raw_inputs(rows, dtypes, raw_spec)
    expected = signature(**{k: tf.constant(v) for k, v in inputs.items()})[PREDICTIONS_KEY].numpy()
    fares = np.array([float(row[LABEL]) for row in rows]).reshape(-1, 1)
    return inputs, fares, expected


def test_the_savedmodel_predicts_fares_in_dollars(test_rows):
    """On log(1 + fare) the predictions would sit near 2.2 for an $8 fare: the model answers in dollars,
    closer to each trip's fare than the median fare is."""
    _, fares, predicted = test_rows
    assert np.median(predicted) == pytest.approx(np.median(fares), rel=0.3)
    assert np.mean(np.abs(predicted - fares)) < np.mean(np.abs(np.median(fares) - fares))
    assert predicted.min() >= -1.0  # exp(x) - 1 is never below -1


def test_every_target_answers_in_dollars_as_the_savedmodel_does(run, version_dir, test_rows):
    inputs, _, expected = test_rows
    manifest = json.loads((version_dir / "manifest.json").read_text())
    targets = {target_name(t): t for t in manifest["targets"]}
    assert set(targets) == {"serving", "tflite-float32", "tflite-int8", "tfjs-float32"}
    serving_mae = targets["serving"]["metric"]
    for name, target in targets.items():  # the parity check: test MAE within 15% of the SavedModel's
        assert target["pushed"] and target["metric"] <= serving_mae * (1 + TOLERANCE), (name, target)
    scale = np.abs(expected) + 1.0
    float32 = TFLiteRuntime(version_dir / "tflite" / "float32.tflite").predict(inputs)
    assert np.max(np.abs(float32 - expected) / scale) <= 1e-4
    int8 = TFLiteRuntime(version_dir / "tflite" / "int8.tflite").predict(inputs)
    assert np.median(np.abs(int8 - expected) / scale) <= 0.05
    tfjs, _ = TfjsNodeRuntime(version_dir / "tfjs" / "float32").run(inputs, latency_calls=0)
    assert np.max(np.abs(tfjs - expected) / scale) <= 1e-4


def test_numeric_features_are_bucketed_inside_every_device_model(version_dir):
    """The quantile buckets are comparisons the TFLite file carries with builtin ops (no Bucketize, which
    TF.js lacks), and they stay float in the int8 model."""
    kinds = {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if not k.startswith("_")}
    for variant in ("float32", "int8"):
        model = tflite_schema.ModelT.InitFromPackedBuf(
            (version_dir / "tflite" / f"{variant}.tflite").read_bytes(), 0
        )
        assert [code.customCode for code in model.operatorCodes if code.customCode] == []
        graph = model.subgraphs[0]
        compares = [
            op
            for op in graph.operators
            if kinds[model.operatorCodes[op.opcodeIndex].builtinCode] == "GREATER_EQUAL"
        ]
        assert len(compares) >= len(NUMERIC_FEATURES), variant
        assert all(graph.tensors[op.inputs[0]].type == tflite_schema.TensorType.FLOAT32 for op in compares)
    graph_json = json.loads((version_dir / "tfjs" / "float32" / "model.json").read_text())
    ops = {node["op"] for node in graph_json["modelTopology"]["node"]}
    assert "GreaterEqual" in ops and ops & {"Exp", "Expm1"}  # the converter may fuse exp(x) - 1
