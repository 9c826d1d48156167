"""The stakeholder report's analysis (metrics, intervals, thresholds, failures, leakage) on real tables, and
its HTML page checked in headless Chromium."""

from __future__ import annotations

import copy
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from components.dumb_baseline_gate.importance import feature_importance
from components.report.render import render_report, validation_gap_message
from components.scoring import metrics
from tests.helpers.data import ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
TAXI_LABEL = "big_tipper"
TAXI_LEAK = "tips"
TAXI_ORDINARY = ("fare", "trip_miles", "trip_seconds", "payment_type", "company", "trip_start_hour")


def _halves(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(rows)
    return order[: rows // 2], order[rows // 2 :]


@dataclass
class Fitted:
    """A real model trained on one half of a table, with its predictions on the other half."""

    features: np.ndarray
    labels: np.ndarray
    model: object
    train: np.ndarray
    test: np.ndarray
    predictions: np.ndarray
    names: list[str]

    @property
    def test_labels(self) -> np.ndarray:
        return self.labels[self.test]


def _classifier() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


@pytest.fixture(scope="module")
def cancer() -> Fitted:
    table = load_breast_cancer()
    train, test = _halves(len(table.target))
    model = _classifier().fit(table.data[train], table.target[train])
    scores = model.predict_proba(table.data[test])[:, 1]
    return Fitted(table.data, table.target, model, train, test, scores, list(table.feature_names))


@pytest.fixture(scope="module")
def wine() -> Fitted:
    table = load_wine()
    train, test = _halves(len(table.target))
    model = _classifier().fit(table.data[train], table.target[train])
    probabilities = model.predict_proba(table.data[test])
    return Fitted(table.data, table.target, model, train, test, probabilities, list(table.target_names))


@pytest.fixture(scope="module")
def diabetes() -> Fitted:
    table = load_diabetes()
    train, test = _halves(len(table.target))
    model = make_pipeline(StandardScaler(), Ridge()).fit(table.data[train], table.target[train])
    predictions = model.predict(table.data[test])
    return Fitted(table.data, table.target, model, train, test, predictions, list(table.feature_names))


def _taxi_column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    """A CSV column as floats (NaN for empty cells) when every filled cell is a number, else as strings."""
    raw = [row[name] for row in rows]
    try:
        return np.array([float(v) if v != "" else np.nan for v in raw])
    except ValueError:
        return np.array(raw, dtype=object)


@pytest.fixture(scope="module")
def taxi(taxi_rows) -> tuple[dict[str, np.ndarray], np.ndarray]:
    header, rows = taxi_rows
    features = {name: _taxi_column(rows, name) for name in header if name != TAXI_LABEL}
    return features, np.array([int(row[TAXI_LABEL]) for row in rows])


# --- metrics -------------------------------------------------------------------------------------------


def test_binary_metrics_match_sklearn(cancer):
    labels, scores = cancer.test_labels, cancer.predictions
    decided = (scores >= 0.5).astype(int)
    expected = {
        "auc": skm.roc_auc_score(labels, scores),
        "auc_pr": skm.average_precision_score(labels, scores),
        "precision": skm.precision_score(labels, decided),
        "recall": skm.recall_score(labels, decided),
        "accuracy": skm.accuracy_score(labels, decided),
        "mse": skm.mean_squared_error(labels, scores),
        "mae": skm.mean_absolute_error(labels, scores),
    }
    for name, value in expected.items():
        assert metrics.metric_value(name, "binary", labels, scores) == pytest.approx(value, abs=1e-12), name
    assert expected["auc"] > 0.95


def test_ranking_metrics_handle_ties_like_sklearn(cancer):
    tied = np.round(cancer.predictions, 1)
    labels = cancer.test_labels
    assert metrics.metric_value("auc", "binary", labels, tied) == pytest.approx(
        skm.roc_auc_score(labels, tied)
    )
    assert metrics.metric_value("auc_pr", "binary", labels, tied) == pytest.approx(
        skm.average_precision_score(labels, tied)
    )


def test_multiclass_and_multilabel_metrics(wine):
    labels, probabilities = wine.test_labels, wine.predictions
    decided = probabilities.argmax(axis=1)
    auc = metrics.metric_value("auc", "multiclass", labels, probabilities)
    assert auc == pytest.approx(skm.roc_auc_score(labels, probabilities, multi_class="ovr"))
    assert metrics.metric_value("accuracy", "multiclass", labels, probabilities) == pytest.approx(
        skm.accuracy_score(labels, decided)
    )
    assert metrics.metric_value("precision", "multiclass", labels, probabilities) == pytest.approx(
        skm.precision_score(labels, decided, average="macro")
    )
    one_hot = np.eye(3, dtype=int)[labels]
    assert metrics.metric_value("auc", "multilabel", one_hot, probabilities) == pytest.approx(auc)
    never = np.zeros((len(labels), 1), dtype=int)
    with_constant_label = np.hstack([one_hot, never])
    padded = np.hstack([probabilities, np.full((len(labels), 1), 0.3)])
    assert metrics.metric_value("auc", "multilabel", with_constant_label, padded) == pytest.approx(auc)
    assert metrics.metric_value("accuracy", "multilabel", one_hot, probabilities) == pytest.approx(
        np.mean(one_hot == (probabilities >= 0.5))
    )


def test_regression_metrics_and_misuse(diabetes):
    labels, predictions = diabetes.test_labels, diabetes.predictions
    mse = metrics.metric_value("mse", "regression", labels, predictions)
    assert mse == pytest.approx(skm.mean_squared_error(labels, predictions))
    assert mse < np.var(labels)
    with pytest.raises(ValueError, match="classification"):
        metrics.metric_value("auc", "regression", labels, predictions)
    with pytest.raises(metrics.UndefinedMetricError):
        metrics.metric_value("auc", "binary", np.ones(5), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.metric_value("f7", "binary", np.ones(5), np.linspace(0, 1, 5))


# --- intervals -----------------------------------------------------------------------------------------


def test_bootstrap_interval_contains_estimate_and_narrows_with_rows(cancer):
    labels, scores = cancer.test_labels, cancer.predictions
    point = metrics.metric_value("accuracy", "binary", labels, scores)
    low, high = metrics.bootstrap_interval("accuracy", "binary", labels, scores)
    few_low, few_high = metrics.bootstrap_interval("accuracy", "binary", labels[:60], scores[:60])
    assert low <= point <= high
    assert 0 < high - low < few_high - few_low


def test_bootstrap_skips_resamples_where_the_metric_is_undefined():
    labels = np.array([0] * 29 + [1])
    scores = np.linspace(0.0, 1.0, 30)
    low, high = metrics.bootstrap_interval("auc", "binary", labels, scores, resamples=200)
    assert low == high == 1.0
    with pytest.raises(metrics.UndefinedMetricError):
        metrics.bootstrap_interval("auc", "binary", np.zeros(10), scores[:10], resamples=20)


def test_bootstrap_auc_of_counted_rows_is_the_auc_of_each_resample(cancer):
    """The binary AUC's resamples are scored from row counts over the rows sorted once: each value must be
    the AUC of that resample ranked on its own (scores rounded to force ties; one class-free resample)."""
    labels, scores = cancer.test_labels, np.round(cancer.predictions, 1)
    fast = metrics._resampled_values("auc", "binary", labels, scores, resamples=300, seed=3)
    drawn = metrics._resampled_rows(len(labels), 300, 3)
    ranked = [metrics.roc_auc(labels[rows], scores[rows]) for rows in drawn]
    np.testing.assert_allclose(fast, ranked, rtol=0, atol=1e-12)
    one_class = metrics._resampled_values("auc", "binary", np.array([0] * 9 + [1]), np.arange(10.0), 50, 0)
    assert np.isnan(one_class).any() and not np.isnan(one_class).all()


def test_paired_improvement_over_a_constant_predictor(cancer, diabetes):
    labels, scores = cancer.test_labels, cancer.predictions
    prior = np.full(len(labels), cancer.labels[cancer.train].mean())
    low, _ = metrics.paired_improvement_interval("auc", "binary", True, labels, scores, prior)
    assert low > 0.3
    shuffled = np.random.default_rng(0).permutation(scores)
    low, high = metrics.paired_improvement_interval("auc", "binary", True, labels, shuffled, prior)
    assert low < 0 < high
    mean = np.full(len(diabetes.test), diabetes.labels[diabetes.train].mean())
    low, _ = metrics.paired_improvement_interval(
        "mse", "regression", False, diabetes.test_labels, diabetes.predictions, mean, resamples=300
    )
    assert low > 0


# --- thresholds, confusion matrices, failures ---------------------------------------------------------


def test_threshold_table_rates_agree_with_counts(cancer):
    labels, scores = cancer.test_labels, cancer.predictions
    table = metrics.threshold_table(labels, scores)
    assert [row["threshold"] for row in table] == pytest.approx(np.arange(0.05, 0.951, 0.05))
    for row in table:
        tp, fp, tn, fn = row["tp"], row["fp"], row["tn"], row["fn"]
        assert tp + fp + tn + fn == len(labels)
        assert tp + fn == labels.sum()
        assert row["flagged_fraction"] == pytest.approx((tp + fp) / len(labels))
        assert row["flagged_fraction"] == pytest.approx(np.mean(scores >= row["threshold"]))
        assert row["true_positive_rate"] == pytest.approx(tp / (tp + fn))
        assert row["false_positive_rate"] == pytest.approx(fp / (fp + tn))
        assert row["false_negative_rate"] == pytest.approx(1 - row["true_positive_rate"])
    flagged = [row["flagged_fraction"] for row in table]
    assert flagged == sorted(flagged, reverse=True) and flagged[0] > flagged[-1]
    at_half = table[9]
    assert at_half["threshold"] == pytest.approx(0.5)
    assert at_half["true_positive_rate"] == pytest.approx(
        metrics.metric_value("recall", "binary", labels, scores)
    )
    assert metrics.threshold_table(labels, scores, thresholds=[1.01])[0]["precision"] is None


def test_confusion_matrices(cancer, wine):
    binary = metrics.confusion_matrix(
        "binary", cancer.test_labels, cancer.predictions, ["malignant", "benign"]
    )
    at_half = metrics.threshold_table(cancer.test_labels, cancer.predictions, thresholds=[0.5])[0]
    assert binary["labels"] == ["malignant", "benign"]
    assert binary["matrix"] == [[at_half["tn"], at_half["fp"]], [at_half["fn"], at_half["tp"]]]
    assert binary["threshold"] == 0.5
    multiclass = metrics.confusion_matrix("multiclass", wine.test_labels, wine.predictions, wine.names)
    matrix = np.array(multiclass["matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == len(wine.test)
    assert matrix.sum(axis=1).tolist() == np.bincount(wine.test_labels, minlength=3).tolist()
    accuracy = metrics.metric_value("accuracy", "multiclass", wine.test_labels, wine.predictions)
    assert np.trace(matrix) / matrix.sum() == pytest.approx(accuracy)
    one_hot = np.eye(3, dtype=int)[wine.test_labels]
    per_label = metrics.confusion_matrix("multilabel", one_hot, wine.predictions, wine.names)["per_label"]
    assert list(per_label) == wine.names
    for j, name in enumerate(wine.names):
        assert np.array(per_label[name]["matrix"]).sum() == len(wine.test)
        assert np.array(per_label[name]["matrix"])[1].sum() == one_hot[:, j].sum()
    with pytest.raises(ValueError, match="regression"):
        metrics.confusion_matrix("regression", wine.test_labels, wine.test_labels)


def test_confident_failures_are_wrong_and_the_surest(cancer, wine, diabetes):
    labels, scores = cancer.test_labels, cancer.predictions
    failures = metrics.confident_failures("binary", labels, scores, k=5)
    wrong = np.flatnonzero((scores >= 0.5) != labels)
    assert len(failures) == min(5, len(wrong)) > 0
    assert all((scores[f["index"]] >= 0.5) != labels[f["index"]] for f in failures)
    confidences = [f["confidence"] for f in failures]
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[0] == pytest.approx(max(max(scores[wrong]), 1 - min(scores[wrong])))
    assert failures[0]["prediction"] == pytest.approx(scores[failures[0]["index"]])
    multiclass = metrics.confident_failures("multiclass", wine.test_labels, wine.predictions)
    assert all(np.argmax(f["prediction"]) != f["label"] for f in multiclass)
    errors = np.abs(diabetes.predictions - diabetes.test_labels)
    worst = metrics.confident_failures("regression", diabetes.test_labels, diabetes.predictions, k=3)
    assert [f["index"] for f in worst] == np.argsort(-errors)[:3].tolist()


# --- target leakage ------------------------------------------------------------------------------------


def test_taxi_tips_is_flagged_as_leakage_and_ordinary_features_are_not(taxi):
    features, labels = taxi
    scores = metrics.leakage_scores("binary", features, labels)
    assert scores[TAXI_LEAK] > 0.96
    for name in TAXI_ORDINARY:
        assert scores[name] < 0.94, name
    warnings = metrics.leakage_warnings("binary", features, labels)
    assert [w["feature"] for w in warnings] == [TAXI_LEAK]
    assert warnings[0]["measure"] == "AUC" and "'tips'" in warnings[0]["message"]


def test_identifier_like_columns_do_not_look_predictive(taxi):
    """A random key shared by ~20 rows memorises labels when scored on the rows it was fitted on (AUC about
    0.65 here); held-out rows expose it as chance. A key unique per row falls into the pooled rare bin."""
    _, labels = taxi
    rng = np.random.default_rng(1)
    identifiers = {
        "group_key": rng.integers(0, len(labels) // 20, len(labels)).astype(str).astype(object),
        "row_key": np.array([f"r{i}" for i in range(len(labels))]),
        "row_number": np.arange(len(labels), dtype=float),
    }
    scores = metrics.leakage_scores("binary", identifiers, labels)
    assert abs(scores["group_key"] - 0.5) < 0.03
    assert scores["row_key"] == pytest.approx(0.5)
    assert scores["row_number"] < 0.6


def test_leakage_for_multiclass_and_regression(wine, diabetes):
    noisy_label = wine.labels.astype(str).astype(object)
    scores = metrics.leakage_scores(
        "multiclass", {"copied_label": noisy_label, "alcohol": wine.features[:, 0]}, wine.labels
    )
    assert scores["copied_label"] == 1.0 and scores["alcohol"] < 0.9
    rng = np.random.default_rng(0)
    leak = diabetes.labels + rng.normal(0, 5, len(diabetes.labels))
    warnings = metrics.leakage_warnings(
        "regression", {"leak": leak, "bmi": diabetes.features[:, 2]}, diabetes.labels
    )
    assert [w["feature"] for w in warnings] == ["leak"] and warnings[0]["measure"] == "R^2"


# --- the page -------------------------------------------------------------------------------------------


def _learning_curves(cancer: Fitted) -> dict:
    """A real capacity sweep: small MLPs trained epoch by epoch, with training and validation log loss."""
    fit, validation = cancer.train[: len(cancer.train) * 3 // 4], cancer.train[len(cancer.train) * 3 // 4 :]
    scaler = StandardScaler().fit(cancer.features[fit])
    x_fit, x_val = scaler.transform(cancer.features[fit]), scaler.transform(cancer.features[validation])
    sweep = []
    for units in ((4,), (64, 32)):
        model = MLPClassifier(hidden_layer_sizes=units, learning_rate_init=0.01, random_state=0)
        loss, val_loss = [], []
        for _ in range(30):
            model.partial_fit(x_fit, cancer.labels[fit], classes=[0, 1])
            loss.append(skm.log_loss(cancer.labels[fit], model.predict_proba(x_fit)))
            val_loss.append(skm.log_loss(cancer.labels[validation], model.predict_proba(x_val)))
        best = int(np.argmin(val_loss)) + 1
        sweep.append(
            {
                "name": "x".join(map(str, units)),
                "loss": loss,
                "val_loss": val_loss,
                "best_epoch": best,
                "overfit": best < len(val_loss),
            }
        )
    return {"capacity_sweep": sweep, "final": {"loss": sweep[-1]["loss"]}}


def _tuning(cancer: Fitted) -> dict:
    x, y = cancer.features[cancer.train], cancer.labels[cancer.train]
    trials = []
    for index, c in enumerate((0.01, 0.1, 1.0, 10.0)):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        score = float(cross_val_score(model, x, y, cv=5, scoring="roc_auc").mean())
        trials.append({"trial_id": f"{index:02d}", "score": score, "hyperparameters": {"C": c}})
    best = max(trials, key=lambda t: t["score"])
    return {"protocol": "5-fold", "trials": trials, "best": best["hyperparameters"], "objective": "val_auc"}


def _targets(cancer: Fitted) -> list[dict]:
    """Two real 'targets': the fitted model and a float16 copy of its weights, measured on the test half."""
    x, labels = cancer.features[cancer.test], cancer.test_labels
    half = copy.deepcopy(cancer.model)
    classifier = half[-1]
    classifier.coef_ = classifier.coef_.astype(np.float16).astype(float)
    targets = []
    for name, model in (("float64", cancer.model), ("float16-weights", half)):
        started = time.perf_counter()
        scores = model.predict_proba(x)[:, 1]
        milliseconds = (time.perf_counter() - started) * 1000 / len(x)
        targets.append(
            {
                "name": name,
                "size_bytes": len(pickle.dumps(model)),
                "metric": metrics.metric_value("auc", "binary", labels, scores),
                "max_abs_diff": float(np.max(np.abs(scores - cancer.predictions))),
                "p50_ms": milliseconds,
                "pushed": name == "float64",
                "reason": "parity within 1e-6" if name == "float64" else "not requested",
            }
        )
    return targets


def _slices(cancer: Fitted) -> list[dict]:
    radius = cancer.features[cancer.test, 0]
    median = np.median(cancer.features[cancer.train, 0])
    rows = []
    for value, members in (("below median", radius < median), ("above median", radius >= median)):
        labels, scores = cancer.test_labels[members], cancer.predictions[members]
        accuracy = {"accuracy": metrics.metric_value("accuracy", "binary", labels, scores)}
        rows.append(
            {"feature": "mean radius", "value": value, "count": int(members.sum()), "metrics": accuracy}
        )
    return rows


def _binary_report(cancer: Fitted) -> dict:
    labels, scores = cancer.test_labels, cancer.predictions
    prior = np.full(len(labels), cancer.labels[cancer.train].mean())
    interval = metrics.paired_improvement_interval(
        "auc", "binary", True, labels, scores, prior, resamples=300
    )
    auc = metrics.metric_value("auc", "binary", labels, scores)
    train_labels = cancer.labels[cancer.train]
    failures = metrics.confident_failures("binary", labels, scores)
    for failure in failures:
        row = cancer.features[cancer.test[failure["index"]]]
        failure["row"] = dict(zip(cancer.names[:6], row[:6].tolist(), strict=True))
    tuning = _tuning(cancer)
    return {
        "title": "Breast cancer: malignant or benign",
        "spec_name": "breast_cancer",
        "task": "binary",
        "description": "Predict whether a tumour is benign from 30 measurements of its cell nuclei.",
        "created": "2026-11-21T20:00:00Z",
        "run_id": "manual__2026-11-21T20:00:00",
        "metric": {"name": "auc", "higher_is_better": True, "threshold": 0.9},
        "verdict": {"blessed": interval[0] > 0.05 and auc >= 0.9, "reasons": []},
        "data": {
            "rows": {"train": len(cancer.train), "eval": 0, "test": len(cancer.test)},
            "features": [
                {
                    "name": name,
                    "kind": "numeric",
                    "missing_fraction": 0.0,
                    "distinct": int(np.unique(cancer.features[cancer.train, j]).size),
                }
                for j, name in enumerate(cancer.names)
            ],
            "label_balance": [
                {
                    "label": "target",
                    "value": str(v),
                    "count": int(np.sum(train_labels == v)),
                    "fraction": float(np.mean(train_labels == v)),
                }
                for v in (0, 1)
            ],
            "label_summary": None,
            "leakage": metrics.leakage_warnings(
                "binary",
                {n: cancer.features[cancer.train, j] for j, n in enumerate(cancer.names)},
                train_labels,
            ),
        },
        "baseline": {
            "description": "class priors",
            "dumb_metric": 0.5,
            "model_metric": auc,
            "improvement_interval": list(interval),
            "margin": 0.05,
            "statistical_power": interval[0] > 0.05,
            "message": f"the model beats the class priors by {interval[0]:.3f} to {interval[1]:.3f} AUC",
        },
        "test_metrics": [
            {
                "name": name,
                "value": metrics.metric_value(name, "binary", labels, scores),
                "interval": list(metrics.bootstrap_interval(name, "binary", labels, scores, resamples=200)),
            }
            for name in ("auc", "accuracy", "precision", "recall")
        ],
        "validation_vs_test": {
            "validation": max(t["score"] for t in tuning["trials"]),
            "test": auc,
            "flagged": False,
            "message": "consistent",
        },
        "confusion_matrix": metrics.confusion_matrix("binary", labels, scores, ["malignant", "benign"]),
        "thresholds": metrics.threshold_table(labels, scores),
        "failures": failures,
        "slices": _slices(cancer),
        "learning_curves": _learning_curves(cancer),
        "tuning": tuning,
        "targets": _targets(cancer),
    }


def _regression_report(diabetes: Fitted) -> dict:
    labels, predictions = diabetes.test_labels, diabetes.predictions
    return {
        "title": "Diabetes progression",
        "spec_name": "diabetes",
        "task": "regression",
        "description": "",
        "created": "2026-11-21T20:00:00Z",
        "run_id": "r1",
        "metric": {"name": "mse", "higher_is_better": False, "threshold": None},
        "verdict": {"blessed": False, "reasons": ["the spec sets no threshold for mse"]},
        "data": {
            "rows": {"train": len(diabetes.train), "eval": 0, "test": len(diabetes.test)},
            "features": [],
            "label_balance": None,
            "leakage": [],
            "label_summary": {
                "mean": float(labels.mean()),
                "std": float(labels.std()),
                "min": float(labels.min()),
                "max": float(labels.max()),
            },
        },
        "baseline": None,
        "test_metrics": [
            {
                "name": "mse",
                "value": metrics.metric_value("mse", "regression", labels, predictions),
                "interval": None,
            }
        ],
        "validation_vs_test": None,
        "confusion_matrix": None,
        "thresholds": None,
        "failures": metrics.confident_failures("regression", labels, predictions, k=3),
        "slices": None,
        "learning_curves": None,
        "tuning": None,
        "targets": None,
        "residuals": {"labels": labels.tolist(), "predictions": predictions.tolist()},
    }


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` to install Debian's Chromium")
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def _open(browser, html: str):
    """A page showing `html`, and the list of every request it makes other than for its data: URLs."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    outside = []
    page.on(
        "request", lambda request: None if request.url.startswith("data:") else outside.append(request.url)
    )
    page.set_content(html, wait_until="load")
    return page, outside


def _image_widths(page) -> list[int]:
    return page.evaluate("Array.from(document.images).map(image => image.complete ? image.naturalWidth : 0)")


def test_full_binary_report_in_chromium(browser, cancer):
    data = _binary_report(cancer)
    page, outside = _open(browser, render_report(data))
    for section in (
        "verdict",
        "data",
        "leakage",
        "baseline",
        "test-metrics",
        "confusion-matrix",
        "thresholds",
        "failures",
        "slices",
        "learning-curves",
        "tuning",
        "targets",
    ):
        assert page.locator(f"#{section}").is_visible(), section
    thresholds = page.locator("#thresholds table.thresholds tbody tr")
    assert thresholds.count() == len(data["thresholds"]) == 19
    assert thresholds.nth(18).is_visible()
    matrix = page.locator("#confusion-matrix table.confusion tbody tr")
    assert matrix.count() == 2 and matrix.first.is_visible()
    cells = page.locator("#confusion-matrix table.confusion tbody td").all_inner_texts()
    assert sum(int(c.replace(",", "")) for c in cells) == len(cancer.test)
    assert page.locator("#failures tbody tr").count() == len(data["failures"])
    actual = page.locator("#failures table.failures > tbody > tr > td:nth-child(2)").all_inner_texts()
    assert len(actual) == len(data["failures"]) and set(actual) <= {"malignant", "benign"}
    assert page.locator("#tuning tbody tr").count() == 4
    assert "Blessed" in page.locator("#verdict").inner_text()
    widths = _image_widths(page)
    assert len(widths) == 4 and all(width > 0 for width in widths)
    assert page.locator("#confusion-matrix img").count() == 1 and page.locator("#thresholds img").count() == 1
    assert outside == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    page.close()


def test_regression_report_renders_without_classification_sections(browser, diabetes):
    html = render_report(_regression_report(diabetes))
    assert 'id="confusion-matrix"' not in html and 'id="thresholds"' not in html and 'id="tuning"' not in html
    page, outside = _open(browser, html)
    assert page.locator("#test-metrics").is_visible() and page.locator("#failures tbody tr").count() == 3
    assert "Not blessed" in page.locator("#verdict").inner_text()
    assert page.locator("#test-metrics img").count() == 1
    assert all(width > 0 for width in _image_widths(page)) and outside == []
    page.close()


def test_multilabel_confusion_renders_one_table_per_label(wine):
    one_hot = np.eye(3, dtype=int)[wine.test_labels]
    matrices = metrics.confusion_matrix("multilabel", one_hot, wine.predictions, wine.names)
    html = render_report({"title": "wine", "task": "multilabel", "confusion_matrix": matrices})
    assert html.count('<table class="confusion">') == 3
    assert all(f"<h3>{name}</h3>" in html for name in wine.names)


def test_user_text_is_escaped():
    hostile = '<img src=x onerror="alert(1)">'
    html = render_report(
        {
            "title": "<b>bold</b> & co",
            "task": "binary",
            "verdict": {"blessed": False, "reasons": [hostile]},
            "data": {
                "rows": {"train": 1},
                "features": [{"name": hostile, "kind": "numeric", "missing_fraction": 0.0, "distinct": 1}],
                "leakage": [{"feature": hostile, "score": 0.99, "measure": "AUC", "message": hostile}],
            },
            "confusion_matrix": {"labels": [hostile, "$x$"], "matrix": [[1, 0], [0, 1]], "threshold": 0.5},
        }
    )
    assert hostile not in html and "<b>bold</b>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert html.count("<img ") == 1


class _ProbabilityRuntime:
    """A fitted scikit-learn classifier behind the runtime interface (`predict(dict of [n, 1] arrays)`)."""

    def __init__(self, model, names: list[str]):
        self.model, self.names = model, names

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        columns = np.hstack([inputs[name].astype(float) for name in self.names])
        return self.model.predict_proba(columns)[:, 1:]


def test_permutation_importance_ranks_a_real_feature_and_flags_noise(cancer):
    names = ["worst radius", "noise"]
    rng = np.random.default_rng(3)
    columns = np.column_stack(
        [cancer.features[:, cancer.names.index("worst radius")], rng.normal(size=len(cancer.labels))]
    )
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        columns[cancer.train], cancer.labels[cancer.train]
    )
    inputs = {name: columns[cancer.test, j : j + 1].astype(np.float32) for j, name in enumerate(names)}

    def auc(labels, predictions):
        return metrics.metric_value("auc", "binary", labels, predictions)

    rows = feature_importance(
        _ProbabilityRuntime(model, names), inputs, cancer.test_labels.reshape(-1, 1), auc
    )
    by_name = {row["feature"]: row for row in rows}
    assert [row["feature"] for row in rows][0] == "worst radius"
    assert by_name["worst radius"]["beneficial"] and by_name["worst radius"]["drop"] > 0.2
    assert not by_name["noise"]["beneficial"] and abs(by_name["noise"]["drop"]) < 0.05
    html = render_report({**_binary_report(cancer), "importance": rows})
    assert 'id="importance"' in html and "No measurable benefit on the test split: noise." in html


def test_left_out_columns_are_named_with_the_reason(cancer):
    report = _binary_report(cancer)
    reason = "100% of its 2000 sampled training values are distinct: it names rows"
    report["data"] = {**report["data"], "left_out_columns": {"patient_id": reason}}
    html = render_report(report)
    assert "Left out of the features" in html and "<code>patient_id</code>: " + reason in html
    assert "Left out of the features" not in render_report(_binary_report(cancer))


def _price_report() -> dict:
    """A regression on prices in dollars: the int8 TFLite model keeps the MAE within 1% of the SavedModel's
    but is 2,346 dollars off it on one row."""
    common = {"size_bytes": 60_000, "p50_ms": 0.4, "pushed": True, "reason": "", "reference_mae": 148.33}
    targets = [("serving", 148.33, 0.0, False), ("tflite-int8", 149.1, 2346.4, True)]
    targets.append(("tfjs-float32", 148.38, 3.1e-4, False))
    return {
        "title": "prices",
        "task": "regression",
        "metric": {"name": "mae", "higher_is_better": False, "threshold": 500.0},
        "parity": {"tolerance": 0.01, "tolerance_kind": "relative", "allowed_loss": 1.4833},
        "targets": [
            {**common, "name": name, "metric": mae, "max_abs_diff": diff, "max_abs_diff_flagged": flagged}
            for name, mae, diff, flagged in targets
        ],
    }


def test_a_regression_targets_large_row_difference_is_shown_and_flagged():
    html = render_report(_price_report())
    section = html[html.index('<section id="targets">') :]
    assert "max difference vs SavedModel on one row (in the label&#x27;s units)" in section
    assert '<td><span class="warning">2,346 (large)</span></td>' in section
    assert "<td>0.00031</td>" in section and section.count("(large)") == 1
    assert "<td>148.33</td>" in section and "<td>148.38</td>" in section
    assert "its mae on the test split is at most 1% worse than the SavedModel&#x27;s (relative" in section
    assert '<p class="warning">tflite-int8: on at least one test row' in section
    assert "mean absolute error (148)" in section


def test_a_classifiers_targets_show_the_difference_in_probability(cancer):
    parity = {"tolerance": 0.01, "tolerance_kind": "absolute"}
    html = render_report({**_binary_report(cancer), "parity": parity})
    section = html[html.index('<section id="targets">') :]
    assert "max difference vs SavedModel on one row (in probability)" in section
    assert "its auc on the test split is at most 0.01 below the SavedModel&#x27;s (absolute" in section
    assert "(large)" not in section


# --- wording a product owner reads -----------------------------------------------------------------------


TAXI_DESCRIPTION = "Predict whether a Chicago taxi trip ends with a tip above 20% of the fare."


def _body(html: str) -> str:
    return html[html.index("<body>") :]


@pytest.mark.parametrize("title", ["taxi: model report", f"taxi: {TAXI_DESCRIPTION}"])
def test_the_description_is_said_once(title):
    """Also for a report.json written when the title repeated the description."""
    data = {"title": title, "spec_name": "taxi", "task": "binary", "label": ["big_tipper"]}
    body = _body(render_report({**data, "description": TAXI_DESCRIPTION}))
    assert body.count(TAXI_DESCRIPTION) == 1
    assert "<b>Predicts</b> big_tipper (yes or no)" in body


def test_test_better_than_validation_says_better_by_a_positive_figure():
    text = validation_gap_message("auc", 0.9236, 0.9312, True, 0.05, False)
    assert text == "Test auc 0.9312 is better than validation 0.9236 by 0.0076: consistent."
    html = render_report(
        {
            "task": "binary",
            "test_metrics": [{"name": "auc", "value": 0.9312}],
            "validation_vs_test": {"validation": 0.9236, "test": 0.9312, "flagged": False, "message": text},
        }
    )
    section = html[html.index('<section id="test-metrics">') :]
    assert "better than validation 0.9236 by 0.0076" in section and "by -" not in section
    assert section.count("0.9236") == 1  # the figures are said once, in the sentence


def test_test_worse_than_validation_says_whether_within_the_gap():
    within = validation_gap_message("auc", 0.9455, 0.9430, True, 0.05, False)
    assert within == (
        "Test auc 0.9430 is worse than validation 0.9455 by 0.0025, within the 0.05 allowed "
        "(evaluation.test_gap): consistent."
    )
    beyond = validation_gap_message("auc", 0.95, 0.87, True, 0.05, True)
    assert beyond.startswith("Test auc 0.8700 is worse than validation 0.9500 by 0.0800, more than the 0.05")
    assert "overfitted the validation data" in beyond
    html = render_report(
        {
            "task": "binary",
            "test_metrics": [{"name": "auc", "value": 0.87}],
            "validation_vs_test": {"validation": 0.95, "test": 0.87, "flagged": True, "message": beyond},
        }
    )
    assert f'<p class="warning">{beyond}</p>' in html


def test_a_lower_is_better_metric_is_compared_the_right_way_round(diabetes):
    """mse: a lower test figure is better; the allowed gap is a share of the validation figure."""
    mse = metrics.metric_value("mse", "regression", diabetes.test_labels, diabetes.predictions)
    better = validation_gap_message("mse", mse + 120.0, mse, False, 0.05, False)
    assert f"is better than validation {mse + 120:.4f} by 120.0000: consistent." in better
    worse = validation_gap_message("mse", mse - 20.0, mse, False, 0.05, False)
    assert "is worse than" in worse and "by 20.0000, within the 5% of validation allowed" in worse
    assert validation_gap_message("mse", None, mse, False, 0.05, False).endswith(
        "no validation figure to compare it with."
    )


def test_the_baseline_comparison_is_said_once(cancer):
    data = _binary_report(cancer)
    body = _body(render_report(data))
    low, high = data["baseline"]["improvement_interval"]
    sentence = f"the improvement&#x27;s 95% interval, {low:.4f} to {high:.4f}, clears the 0.05 required."
    assert body.count(sentence) == 1 and body.count(data["baseline"]["message"]) == 0
    assert "The model beats the dumb baseline, class priors: auc" in body
    assert "<td>beats it by that, with 95% confidence</td><td>yes</td>" in body


def _taxi_statistics(rows: list[dict[str, str]]):
    """TFDV's statistics of taxi trips as CsvExampleGen writes them: an empty cell is a feature with no
    value (not an absent feature); whole numbers as int64."""
    import pyarrow as pa
    from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory

    types = {"trip_start_hour": pa.int64(), "pickup_community_area": pa.int64()}
    types.update({"company": pa.binary(), "fare": pa.float32()})
    read = {pa.int64(): int, pa.binary(): str.encode, pa.float32(): float}
    arrays = [
        pa.array([[read[kind](row[name])] if row[name] else [] for row in rows], type=pa.list_(kind))
        for name, kind in types.items()
    ]
    return generate_statistics_in_memory(pa.RecordBatch.from_arrays(arrays, list(types))).datasets[0]


def test_integer_categoricals_have_distinct_values_and_empty_cells_count_as_missing(taxi_rows):
    from components.core.spec import FeatureKind
    from components.report.executor import _feature_row

    rows = taxi_rows[1][:3000]
    statistics = _taxi_statistics(rows)
    areas = {row["pickup_community_area"] for row in rows if row["pickup_community_area"]}
    hour = _feature_row("trip_start_hour", FeatureKind.CATEGORICAL, statistics, vocabulary_size=24)
    area = _feature_row("pickup_community_area", FeatureKind.CATEGORICAL, statistics, len(areas))
    assert hour["distinct"] == 24 and area["distinct"] == len(areas)
    company = _feature_row("company", FeatureKind.CATEGORICAL, statistics)
    companies = {row["company"] for row in rows if row["company"]}
    assert company["distinct"] == len(companies)
    empty = sum(row["company"] == "" for row in rows)
    assert empty > 500 and company["missing_fraction"] == pytest.approx(empty / len(rows))
    empty_areas = sum(row["pickup_community_area"] == "" for row in rows)
    assert area["missing_fraction"] == pytest.approx(empty_areas / len(rows))
    assert _feature_row("fare", FeatureKind.NUMERIC, statistics)["distinct"] is None
    html = render_report({"task": "binary", "data": {"features": [hour, area, company]}})
    assert "<td>trip_start_hour</td><td>categorical</td><td>none</td><td>24</td>" in html
    assert f"<td>company</td><td>categorical</td><td>{100 * empty / len(rows):.1f}%</td>" in html


def test_a_failures_missing_cells_say_missing_and_sizes_are_in_decimal_units():
    failure = {"index": 7, "label": 14.5, "prediction": 6.25, "confidence": 8.25}
    failure["row"] = {"company": "", "fare": float("nan"), "trip_miles": 1.5}
    target = {"name": "tfjs-float32", "size_bytes": 243_300, "metric": 3.1, "pushed": True, "reason": ""}
    html = render_report({"task": "regression", "failures": [failure], "targets": [target]})
    assert "<li><b>company</b> (missing)</li><li><b>fare</b> (missing)</li>" in html
    assert "<td>243.3 kB</td>" in html  # as the CLI and the TF.js page write it
