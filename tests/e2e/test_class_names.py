"""A multiclass label written as class names, on real taxi trips: how the passenger paid (`Cash`,
`Credit Card`, `No Charge`, ...). The model is pushed to every runtime, and each one names the same
class for the same rows as the SavedModel: TF Serving's signature, TFLite, TF.js in Node and on the page."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tensorflow_transform as tft
import yaml
from tfx.types import artifact_utils, standard_artifacts

from components.core.models_config import read_current
from components.core.sources import write_table
from components.core.spec import load_spec
from components.curated_schema_gen.executor import (
    LabelValuesError,
    check_classes_seen_in_training,
    label_counts,
)
from components.scoring.examples import to_raw_inputs
from components.scoring.runtimes import TensorFlowRuntime, TfjsNodeRuntime, TFLiteRuntime
from pipelines.ops import predict
from pipelines.ops.cli import run_training
from pipelines.paths import RunPaths
from tests.helpers.pipeline_runs import (
    output_uri,
    page_predictions,
    served_classes,
    spoken_percent,
    write_taxi_spec,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("class-names")]

LABEL = "payment_type"


def payment_spec(folder, source):
    path = write_taxi_spec(folder, source)
    spec = yaml.safe_load(path.read_text())
    features = {name: kind for name, kind in spec["features"].items() if name != LABEL}
    features["tips"] = "numeric"  # a cash tip is not recorded: the tip tells how the trip was paid
    spec.update(
        name="taxi-payment",
        label=LABEL,
        task="multiclass",
        features=features,
        exclude=[],
        metric={"name": "accuracy", "threshold": 0.5},
        deployment={"tflite": ["float32"], "tfjs": ["float32"], "parity": {"tolerance": 0.01}},
    )
    path.write_text(yaml.safe_dump(spec))
    return load_spec(path)


@pytest.fixture(scope="module")
def payment_run(tmp_path_factory, taxi_rows):
    """The first 3,000 trips as they are, rare classes included (one 'Prcard' trip, two 'Dispute')."""
    header, rows = taxi_rows
    folder = tmp_path_factory.mktemp("payment")
    spec = payment_spec(folder, write_table(folder / "trips.csv", header, rows[:3000]))
    summary = run_training(spec, folder / "home")
    assert summary.pushed_new, summary.power_message
    paths = RunPaths.for_spec(spec.name, folder / "home")
    return spec, paths, summary, rows[2940:3000]


def test_label_classes_are_counted_per_split_and_one_train_lacks_is_named(payment_run):
    spec, paths, _, _ = payment_run
    examples = standard_artifacts.Examples()
    examples.uri = str(output_uri(paths, spec, "CsvExampleGen", "examples"))
    examples.split_names = artifact_utils.encode_split_names(["train", "eval", "test"])
    counts = label_counts([examples], LABEL)
    assert sum(sum(found.values()) for found in counts.values()) == 3000
    assert {"Cash", "Credit Card"} <= set(counts["eval"]) and counts["train"]["Prcard"] == 1
    check_classes_seen_in_training(LABEL, counts)  # every class of eval and test is in train
    counts["test"]["Pcard"] = 2  # as if two trips paid by 'Pcard' had been hashed into test
    with pytest.raises(
        LabelValuesError, match=r"class 'Pcard' \(2 rows in test\) never appears in the train"
    ):
        check_classes_seen_in_training(LABEL, counts)


def test_every_target_names_the_same_class_as_the_saved_model(payment_run):
    spec, paths, summary, rows = payment_run
    current = read_current(paths.serving_dir.parent, paths.serving_dir.name)
    classes = current["manifest"]["classes"]
    assert {"Cash", "Credit Card", "No Charge", "Prcard"} <= set(classes) and current["manifest"][
        "task"
    ] == "multiclass"
    served = served_classes(paths, spec, rows)
    assert served["manifest_classes"] == classes
    version_dir = paths.serving_dir / summary.pushed_version
    reference = TensorFlowRuntime(str(version_dir))
    transform_graph = output_uri(paths, spec, "Transform", "transform_graph")
    raw_spec = tft.TFTransformOutput(str(transform_graph)).raw_feature_spec()
    inputs = to_raw_inputs(rows, reference.input_dtypes(), raw_spec)
    expected = reference.predict(inputs)
    named = [classes[i] for i in np.argmax(expected, axis=1)]
    assert served["outputs"]["predicted_class"] == named  # TF Serving's signature, from tf.Examples
    tflite = TFLiteRuntime(version_dir / "tflite" / "float32.tflite").predict(inputs)
    tfjs, _ = TfjsNodeRuntime(version_dir / "tfjs" / "float32").run(inputs, latency_calls=0)
    for runtime in (tflite, tfjs):
        assert [classes[i] for i in np.argmax(runtime, axis=1)] == named
        np.testing.assert_allclose(runtime, expected, atol=1e-4)
    accuracy = np.mean([name == row[LABEL] for name, row in zip(named, rows, strict=True)])
    assert accuracy >= 0.8, accuracy
    shown = page_predictions(paths.serving_dir, {name: values[:3] for name, values in inputs.items()})
    for index, answer in enumerate(shown):
        assert answer.predicted == named[index]
        np.testing.assert_allclose(answer.scores, expected[index], atol=1e-4)
        best = spoken_percent(max(answer.scores))
        assert answer.text == f"payment_type: {named[index]}, {best} probability"


def test_predict_names_the_class_and_every_probability_on_every_target(payment_run, tmp_path):
    """`pipelines predict` on rows as a user has them (the label column is there and is kept): each target
    writes the SavedModel's class name and one probability per class, in the manifest's class order."""
    spec, paths, summary, rows = payment_run
    header = list(rows[0])
    source = write_table(tmp_path / "trips.csv", header, rows)
    classes = read_current(paths.serving_dir.parent, paths.serving_dir.name)["manifest"]["classes"]
    outputs = {}
    for target in ("serving", "tflite-float32", "tfjs-float32"):
        scored = predict.predict_file(spec, paths, source, tmp_path / f"{target}.csv", target=target)
        assert scored.added == [f"predicted_{LABEL}", *(f"probability_{name}" for name in classes)]
        with open(scored.output, newline="", encoding="utf-8") as handle:
            outputs[target] = list(csv.DictReader(handle))
    reference = outputs["serving"]
    assert [row[LABEL] for row in reference] == [row[LABEL] for row in rows], "input columns are kept"
    for row in reference:
        probabilities = [float(row[f"probability_{name}"]) for name in classes]
        assert row[f"predicted_{LABEL}"] == classes[int(np.argmax(probabilities))]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    for target, scored_rows in outputs.items():
        assert [r[f"predicted_{LABEL}"] for r in scored_rows] == [r[f"predicted_{LABEL}"] for r in reference]
        for name in classes:
            np.testing.assert_allclose(
                [float(r[f"probability_{name}"]) for r in scored_rows],
                [float(r[f"probability_{name}"]) for r in reference],
                atol=1e-4,
                err_msg=target,
            )
