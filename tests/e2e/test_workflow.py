"""The universal workflow end to end on real tables: every task type from a spec alone, the dumb baseline
and statistical power, the evaluation protocol around the test split, tuning, and the stakeholder report
(rendered in headless Chromium)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from sklearn.metrics import log_loss
from tfx.types import standard_artifacts

from components.core.artifacts import (
    PROTOCOL_FILE,
    RAW_SIGNATURE,
    REPORT_DATA_FILE,
    TEST_PREDICTIONS_FILE,
    read_power,
)
from components.core.sources import write_table
from components.core.spec import load_spec
from pipelines.ops.cli import run_training, tuning_lines
from pipelines.paths import RunPaths
from pipelines.workflow import training
from tests.helpers.data import ARTIFACTS
from tests.helpers.pipeline_runs import (
    output_uri,
    served_classes,
    serving_snapshot,
    versions,
    write_taxi_spec,
)
from tests.helpers.sklearn_tables import write_task

pytestmark = pytest.mark.e2e

# The binary run also tunes: iterated K-fold (2 x 2 folds), two trials, a two-step capacity sweep.
TUNED = {
    "evaluation": {"protocol": "iterated_kfold", "folds": 2, "repetitions": 2, "seed": 1},
    "tuning": {"trials": 2, "capacity": [[8], [64, 64]], "max_epochs": 12},
}
# The shuffled-label run needs no long training to show that there is nothing to learn.
SHORT_TRAINING = {"epochs": 4, "steps_per_epoch": 10, "batch_size": 32, "hidden_units": [16]}


def run_task(tmp_path_factory, task: str, **changes):
    folder = tmp_path_factory.mktemp(task)
    spec = load_spec(write_task(folder, task, **changes))
    return spec, run_training(spec, folder / "home"), RunPaths.for_spec(spec.name, folder / "home")


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return run_task(tmp_path_factory, "binary", **TUNED)


@pytest.fixture(scope="module")
def iris_by_default(tmp_path_factory):
    """Iris from the five lines (and a small budget, a cheap deployment): the universal workflow is the
    default, so the run sweeps capacity and tunes within the budget. It is also the multiclass task's run."""
    from tests.helpers.sklearn_tables import table, write_csv

    folder = tmp_path_factory.mktemp("iris")
    columns, label, _ = table("multiclass")
    spec_file = folder / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "iris",
                "data": {"source": str(write_csv(folder / "iris.csv", columns))},
                "label": label,
                "task": "multiclass",
                "metric": {"name": "accuracy", "threshold": 0.5},
                "tuning": {"budget_minutes": 0.4},
                "deployment": {"tflite": [], "tfjs": []},
            }
        )
    )
    spec = load_spec(spec_file)
    return spec, run_training(spec, folder / "home"), RunPaths.for_spec(spec.name, folder / "home")


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(task, marks=pytest.mark.xdist_group(f"workflow-{task}"))
        for task in ("multiclass", "regression", "multilabel")
    ],
)
def other_task(request, tmp_path_factory):
    if request.param == "multiclass":
        return request.getfixturevalue("iris_by_default")
    return run_task(tmp_path_factory, request.param)


def assert_beats_dumb_baseline_and_is_pushed(spec, run, paths):
    assert run.blessed is True, run.power_message
    power = read_power(str(output_uri(paths, spec, "DumbBaselineGate", "baseline_blessing")))
    assert power["statistical_power"] is True and power["improvement_interval"][0] > 0
    better = power["model_metric"] - power["dumb_metric"]
    assert (better > 0) if spec.metric.higher_is_better else (better < 0), power
    assert run.pushed_new and len(versions(paths.serving_dir)) == 1
    assert run.report_path and Path(run.report_path).is_file()


@pytest.mark.xdist_group("workflow-binary")
def test_binary_task_is_tuned_by_iterated_kfold_and_beats_its_dumb_baseline(binary):
    spec, run, paths = binary
    assert_beats_dumb_baseline_and_is_pushed(spec, run, paths)
    assert run.states["Tuner"] == "COMPLETE"
    # The label is written "malignant" / "benign": the Evaluator (TFMA) and the gate score it as trained.
    assert_evaluator_loss_is_the_crossentropy_of_the_test_predictions(spec, run, paths)
    report = json.loads((output_uri(paths, spec, "Report", "report") / REPORT_DATA_FILE).read_text())
    assert report["confusion_matrix"]["labels"] == ["benign", "malignant"]
    with open(spec.data.source, newline="") as handle:
        rows = list(csv.DictReader(handle))[:20]
    served = served_classes(paths, spec, rows)["outputs"]
    assert all(row == ["benign", "malignant"] for row in served["classes"])
    positive = [p[0] >= 0.5 for p in served["predictions"]]
    assert served["predicted_class"] == ["malignant" if p else "benign" for p in positive]


@pytest.mark.xdist_group("workflow-binary")
def test_tuning_pools_train_and_eval_only_and_the_final_model_uses_its_best_values(binary):
    spec, run, paths = binary
    protocol = json.loads((output_uri(paths, spec, "Tuner", "tuner_results") / PROTOCOL_FILE).read_text())
    statistics = output_uri(paths, spec, "StatisticsGen", "statistics")
    import tensorflow_data_validation as tfdv

    rows = {
        split: tfdv.load_stats_binary(str(statistics / f"Split-{split}" / "FeatureStats.pb"))
        .datasets[0]
        .num_examples
        for split in ("train", "eval", "test")
    }
    assert protocol["pool_rows"] == rows["train"] + rows["eval"]  # the test split is never pooled
    assert len(protocol["folds"]) == 4 and protocol["protocol"] == "2x iterated 2-fold"
    for fold in protocol["folds"]:
        assert fold["train_rows"] + fold["validation_rows"] == protocol["pool_rows"]
    assert len(protocol["trials"]) == 2
    assert all(len(t["fold_scores"]) == 4 for t in protocol["trials"].values())
    sweep = protocol["capacity_sweep"]
    assert sweep and all(len(s["loss"]) == len(s["val_loss"]) > 0 for s in sweep)
    best = json.loads(
        (output_uri(paths, spec, "Tuner", "best_hyperparameters") / "best_hyperparameters.txt").read_text()
    )["values"]
    searched = {"units", "dropout", "l1", "l2", "learning_rate", "numeric_encoding"}
    assert searched | {"hidden_units", "epochs"} <= set(best)
    # The Trainer retrained on train + eval with the best values, and nothing before the Evaluator
    # read the test split: the Tuner and the Trainer were given train and eval only.
    pipeline = training.create_components(spec, paths)
    by_id = {component.id: component for component in pipeline}
    assert json.loads(by_id["Tuner"].exec_properties["train_args"])["splits"] == ["train"]
    assert json.loads(by_id["Tuner"].exec_properties["eval_args"])["splits"] == ["eval"]
    assert json.loads(by_id["Trainer"].exec_properties["train_args"])["splits"] == ["train", "eval"]
    history = json.loads((output_uri(paths, spec, "Trainer", "model_run") / "history.json").read_text())
    assert len(history["loss"]) == best["epochs"] and "val_loss" not in history


def test_each_task_type_trains_from_its_spec_and_beats_its_dumb_baseline(other_task):
    spec, run, paths = other_task
    assert_beats_dumb_baseline_and_is_pushed(spec, run, paths)
    report = json.loads((output_uri(paths, spec, "Report", "report") / REPORT_DATA_FILE).read_text())
    assert report["task"] == spec.task.value
    if spec.task.value == "regression":
        assert report["confusion_matrix"] is None and report["residuals"]
        # The patient id is text distinct in every row, the referral code `NA` in every row: both left out
        # of the features, each with its reason.
        assert sorted(run.left_out_columns) == ["patient_id", "referral_code"], run.left_out_columns
        assert "sampled training values are distinct" in run.left_out_columns["patient_id"]
        assert "no value in any of the" in run.left_out_columns["referral_code"]
        assert report["data"]["left_out_columns"] == run.left_out_columns
        features = {row["name"] for row in report["data"]["features"]}
        assert not features & {"patient_id", "referral_code"}, features
    else:
        assert run.left_out_columns == {}
        assert report["confusion_matrix"] is not None
        assert_evaluator_loss_is_the_crossentropy_of_the_test_predictions(spec, run, paths)
        assert_served_outputs_speak_the_tables_classes(spec, paths, report)


def test_a_simple_model_is_scored_beside_the_network_on_the_evaluators_test_rows(other_task):
    """Gradient-boosted trees fitted on the training rows, scored on exactly the test rows the gate and the
    Evaluator (TFMA, on the test split) scored the network on; in power.json, report.json and the HTML."""
    from components.dumb_baseline_gate.simple_model import rows_digest
    from components.scoring import parity

    spec, run, paths = other_task
    power = read_power(str(output_uri(paths, spec, "DumbBaselineGate", "baseline_blessing")))
    simple = power["simple_model"]
    examples = standard_artifacts.Examples()
    examples.uri = str(output_uri(paths, spec, "CsvExampleGen", "examples"))
    examples.split_names = '["train", "eval", "test"]'
    test_rows = parity.read_serialized(parity.split_records([examples], parity.TEST_SPLIT))
    assert simple["test_rows"] == len(test_rows) == power["test_rows"]
    assert simple["test_rows_sha256"] == rows_digest(test_rows)
    assert simple["model_metric"] == power["model_metric"]
    better = simple["simple_metric"] - power["dumb_metric"]
    assert (better > 0) if spec.metric.higher_is_better else (better < 0), "the trees beat the dumb baseline"
    assert run.simple_model_message == simple["message"] and "gradient-boosted trees:" in simple["message"]
    report = json.loads((output_uri(paths, spec, "Report", "report") / REPORT_DATA_FILE).read_text())
    assert report["baseline"]["simple_model"] == simple
    html = (output_uri(paths, spec, "Report", "report") / "report.html").read_text()
    assert "Against a dumb baseline and a simple model" in html and simple["description"] in html


@pytest.mark.xdist_group("workflow-multiclass")
def test_a_spec_without_tuning_sweeps_and_tunes_within_its_budget(iris_by_default):
    """The universal workflow is the default: the five lines (and a small budget, a cheap deployment) run
    the capacity sweep and the search, and the search stops when the budget is spent."""
    spec, run, paths = iris_by_default
    assert spec.tuning is not None and spec.tuning.search == "bayesian"
    assert run.states["Tuner"] == "COMPLETE" and run.blessed is True, run.power_message
    protocol = json.loads((output_uri(paths, spec, "Tuner", "tuner_results") / PROTOCOL_FILE).read_text())
    budget = protocol["budget"]
    starts = sorted(trial["admitted_at"] for trial in protocol["trials"].values())
    assert budget["budget_seconds"] == 24.0 and budget["trials_run"] == len(starts) >= 1
    # No trial but the first starts once the budget is spent (the first always runs: the Trainer needs one).
    assert all(start < budget["budget_seconds"] for start in starts[1:]), (starts, budget)
    assert budget["spent_seconds"] >= budget["budget_seconds"], budget
    assert budget["stopped_by"] == "budget" and budget["trials_run"] < spec.tuning.trials
    assert protocol["capacity_sweep"], "the capacity sweep ran"
    best = json.loads(
        (output_uri(paths, spec, "Tuner", "best_hyperparameters") / "best_hyperparameters.txt").read_text()
    )["values"]
    assert {"units", "depth", "batch_size", "dropout", "learning_rate"} <= set(best)
    lines = tuning_lines(run)
    assert lines and "min; sweep" in lines[0] and "stopped by budget" in lines[0]


def assert_served_outputs_speak_the_tables_classes(spec, paths, report) -> None:
    """serving_default returns classify-style scores and class names as the table writes them; the
    manifest lists the same names; the report's confusion matrix uses them."""
    with open(spec.data.source, newline="") as handle:
        rows = list(csv.DictReader(handle))[:40]
    served = served_classes(paths, spec, rows)
    outputs, classes = served["outputs"], served["manifest_classes"]
    if spec.task.value == "multiclass":
        assert sorted(classes) == ["setosa", "versicolor", "virginica"]
        assert report["confusion_matrix"]["labels"] == classes
        assert all(row == classes for row in outputs["classes"])
        np.testing.assert_allclose(outputs["scores"], outputs["predictions"])
        predicted = [classes[i] for i in np.argmax(outputs["predictions"], axis=1)]
        assert outputs["predicted_class"] == predicted
        # Columns named "petal length (cm)" reach the devices' signature under tf.function's argument names.
        signature = tf.saved_model.load(str(paths.serving_dir / versions(paths.serving_dir)[-1])).signatures
        assert "petal_length__cm_" in signature[RAW_SIGNATURE].structured_input_signature[1]
        # Iris is easy: the served class names match the table's own on nearly every row.
        agree = np.mean([p == row["species"] for p, row in zip(predicted, rows, strict=True)])
        assert agree >= 0.8, agree
    else:
        assert classes == spec.label_columns and "predicted_class" not in outputs
        assert all(row == spec.label_columns for row in outputs["classes"])
        assert set(report["confusion_matrix"]["per_label"]) == set(spec.label_columns)


def assert_evaluator_loss_is_the_crossentropy_of_the_test_predictions(spec, run, paths) -> None:
    """The Evaluator reads the model as a plain SavedModel, so its test loss is a configured metric,
    not the model's compiled one: it must be the task's crossentropy of the predictions the gate saved
    for the same test rows."""
    saved = np.load(output_uri(paths, spec, "DumbBaselineGate", "test_predictions") / TEST_PREDICTIONS_FILE)
    labels, predictions = saved["labels"], saved["predictions"]
    if spec.task.value == "multiclass":
        expected = {"loss": log_loss(labels[:, 0], predictions, labels=range(predictions.shape[1]))}
    elif spec.task.value == "multilabel":
        expected = {
            f"{name}/loss": log_loss(labels[:, i], predictions[:, i], labels=[0, 1])
            for i, name in enumerate(spec.label_columns)
        }
    else:
        expected = {"loss": log_loss(labels[:, 0], predictions[:, 0], labels=[0, 1])}
    for key, value in expected.items():
        assert run.metrics[key] == pytest.approx(value, rel=1e-3, abs=1e-4), key


@pytest.mark.xdist_group("workflow-shuffled")
def test_shuffled_labels_have_no_statistical_power_and_push_nothing(tmp_path_factory, capsys):
    """The breast cancer labels shuffled, and written as the original Wisconsin file writes them (benign 2,
    malignant 4; positive_class: 4): a binary label of two numbers other than 0/1."""
    folder = tmp_path_factory.mktemp("shuffled")
    codes = {"benign": 2, "malignant": 4}
    spec = load_spec(
        write_task(
            folder,
            "binary",
            shuffle_labels=True,
            label_codes=codes,
            training=SHORT_TRAINING,
            positive_class=4,
        )
    )
    assert spec.positive_class == "4"
    run = run_training(spec, folder / "home")
    paths = RunPaths.for_spec(spec.name, folder / "home")
    assert run.blessed is False
    assert run.power_message.startswith("no statistical power")
    power = read_power(str(output_uri(paths, spec, "DumbBaselineGate", "baseline_blessing")))
    for figure in (power["model_metric"], power["dumb_metric"]):
        assert f"{figure:.4f}" in run.power_message  # both numbers, as the issue asks
    assert power["improvement_interval"][0] <= 0 <= power["improvement_interval"][1]
    assert not run.pushed and serving_snapshot(paths.serving_dir) == {}
    report = json.loads((output_uri(paths, spec, "Report", "report") / REPORT_DATA_FILE).read_text())
    assert report["verdict"]["blessed"] is False
    assert any("no statistical power" in reason for reason in report["verdict"]["reasons"])
    assert report["confusion_matrix"]["labels"] == ["2", "4"]  # [negative, positive] as the file writes them


@pytest.fixture(scope="module")
def taxi_with_tips(tmp_path_factory, taxi_rows):
    """1,500 real taxi trips with `tips` among the features (leakage) and slices by payment type."""
    header, rows = taxi_rows
    folder = tmp_path_factory.mktemp("tips")
    source = write_table(folder / "taxi.csv", header, rows[:1500])
    path = write_taxi_spec(
        folder, source, evaluation={"slices": ["payment_type"]}, training={**SHORT_TRAINING, "batch_size": 64}
    )
    raw = yaml.safe_load(path.read_text())
    raw["features"]["tips"] = "numeric"
    raw["exclude"] = ["trip_start_timestamp"]
    raw["deployment"] = {"tflite": [], "tfjs": []}
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(path)
    return spec, run_training(spec, folder / "home"), RunPaths.for_spec(spec.name, folder / "home")


@pytest.mark.xdist_group("workflow-tips")
def test_tips_as_a_feature_is_reported_as_target_leakage(taxi_with_tips):
    spec, run, paths = taxi_with_tips
    report = json.loads((output_uri(paths, spec, "Report", "report") / REPORT_DATA_FILE).read_text())
    flagged = [warning["feature"] for warning in report["data"]["leakage"]]
    assert flagged == ["tips"], report["data"]["leakage"]
    assert "'tips'" in report["data"]["leakage"][0]["message"]
    assert {s["value"] for s in report["slices"]} >= {"Cash", "Credit Card"}
    importance = report["importance"]
    assert importance[0]["feature"] == "tips" and importance[0]["beneficial"], importance[:3]
    assert {row["feature"] for row in importance} == set(spec.feature_columns(list(spec.features)))


@pytest.mark.xdist_group("workflow-tips")
def test_report_renders_in_chromium_with_threshold_table_and_confusion_matrix(taxi_with_tips):
    playwright = pytest.importorskip("playwright.sync_api")
    _, run, _ = taxi_with_tips
    test_rows = int(run.metrics["example_count"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(Path(run.report_path).as_uri())
        assert page.locator("#thresholds table").is_visible()
        assert page.locator("#thresholds table tbody tr").count() == 19  # thresholds 0.05 .. 0.95
        assert page.locator("#confusion-matrix table").is_visible()
        cells = page.locator("#confusion-matrix table td").all_inner_texts()
        counts = [int(text.replace(",", "")) for text in cells if text.replace(",", "").isdigit()]
        assert len(counts) == 4 and sum(counts) == test_rows
        assert page.locator("#leakage").inner_text().count("tips") >= 1
        assert page.locator("#importance table tbody tr").first.inner_text().startswith("tips")
        images = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
        assert images and all(width > 0 for width in images)
        page.screenshot(path=str(ARTIFACTS / "stakeholder-report.png"), full_page=True)
        browser.close()
    assert all(url.startswith("file://") for url in requests), requests
