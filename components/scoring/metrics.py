"""Metrics for the gate, the report and the replay: values, intervals, thresholds, failures, leakage.

Tasks are plain strings: "binary", "multiclass", "multilabel", "regression". Array shapes:
binary labels [n] of 0/1 with predictions [n] probabilities; multiclass labels [n] class ids with
predictions [n, k] probabilities; multilabel labels and predictions [n, m]; regression labels and
predictions [n]. Nothing here reads files or knows about TFX.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata
from sklearn import metrics as skm

from components.core.spec import ProblemSpec, TaskType

BINARY = "binary"
MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, MULTILABEL, REGRESSION)

DECISION_THRESHOLD = 0.5
DEFAULT_THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(1, 20))
LEAKAGE_BINS = 20
RARE_CATEGORY_ROWS = 5
LEAKAGE_LIMIT = 0.95
LEAKAGE_MEASURES = {BINARY: "AUC", MULTILABEL: "AUC", MULTICLASS: "accuracy", REGRESSION: "R^2"}


class UndefinedMetricError(ValueError):
    """The metric has no value on these rows (for example an AUC when only one class is present)."""


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}': expected one of {', '.join(TASKS)}")


def _arrays(task: str, labels, predictions) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as numpy arrays; a single-column [n, 1] array becomes [n] where the task has one
    value per row (binary and regression predictions, every task's labels but multilabel)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions, dtype=float)
    if task != MULTILABEL and labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if task in (BINARY, REGRESSION) and predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions[:, 0]
    return labels, predictions


def _binary_decisions(predictions: np.ndarray, threshold: float = DECISION_THRESHOLD) -> np.ndarray:
    return (np.asarray(predictions, dtype=float) >= threshold).astype(int)


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=int)[np.asarray(labels, dtype=int)]


def _indicator_columns(task: str, labels: np.ndarray, predictions: np.ndarray):
    """Labels and scores as [n, m] one-vs-rest columns, for the ranking metrics of multi-output tasks."""
    if task == MULTICLASS:
        return _one_hot(labels, predictions.shape[1]), predictions
    return labels, predictions


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC AUC from ranks (Mann-Whitney U), ties counted as half: sklearn's roc_auc_score without its
    per-call validation, which dominates the cost of a thousand bootstrap resamples."""
    positive = np.asarray(labels).astype(bool)
    positives, negatives = int(positive.sum()), int((~positive).sum())
    if positives == 0 or negatives == 0:
        raise UndefinedMetricError("only one class present")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Binary average precision (area under the precision-recall steps), as sklearn defines it."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    sorted_scores, positive = np.asarray(scores, dtype=float)[order], np.asarray(labels)[order].astype(bool)
    if positive.all() or not positive.any():
        raise UndefinedMetricError("only one class present")
    cut = np.r_[np.flatnonzero(np.diff(sorted_scores)), positive.size - 1]
    true_positives = np.cumsum(positive)[cut]
    precision = true_positives / (cut + 1.0)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _macro_ranking(scorer: Callable, columns: np.ndarray, scores: np.ndarray) -> float:
    """Mean of the per-column binary metric over the columns that contain both classes."""
    values = [
        scorer(columns[:, j], scores[:, j])
        for j in range(columns.shape[1])
        if np.unique(columns[:, j]).size == 2
    ]
    if not values:
        raise UndefinedMetricError("no label column contains both classes")
    return float(np.mean(values))


def _ranking_metric(scorer: Callable, task: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    if task == REGRESSION:
        raise ValueError("ranking metrics (auc, auc_pr) need a classification task")
    if task == BINARY:
        return scorer(labels, predictions)
    columns, scores = _indicator_columns(task, labels, predictions)
    return _macro_ranking(scorer, columns, scores)


def _share(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _precision_recall(name: str, actual: np.ndarray, decided: np.ndarray) -> float:
    """Precision or recall of the positive class; 0 when its denominator is empty, as in Keras."""
    true_positives = float(np.sum(actual & decided))
    return _share(true_positives, decided.sum() if name == "precision" else actual.sum())


def _macro_precision_recall(name: str, labels: np.ndarray, decided: np.ndarray) -> float:
    """Mean over the classes that occur among the labels or predictions (sklearn's macro average)."""
    classes = np.union1d(labels, decided)
    return float(np.mean([_precision_recall(name, labels == c, decided == c) for c in classes]))


def _decision_metric(name: str, task: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    """precision / recall / accuracy of hard decisions.

    Binary decides at 0.5. Multiclass decides by argmax and averages precision and recall over classes
    (macro). Multilabel decides each label at 0.5 and pools every (row, label) decision, as Keras' binary
    accuracy, precision and recall do.
    """
    if task == REGRESSION:
        raise ValueError(f"'{name}' needs a classification task")
    labels = labels.astype(int)
    decided = np.argmax(predictions, axis=1) if task == MULTICLASS else _binary_decisions(predictions)
    if name == "accuracy":
        return float(np.mean(labels == decided))
    if task == MULTICLASS:
        return _macro_precision_recall(name, labels, decided)
    return _precision_recall(name, labels.ravel() == 1, decided.ravel() == 1)


def _error_metric(name: str, task: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    """mse / mae; for multiclass against the one-hot labels (the Brier score for mse)."""
    if task == MULTICLASS:
        labels = _one_hot(labels, predictions.shape[1])
    errors = np.asarray(predictions, dtype=float) - np.asarray(labels, dtype=float)
    return float(np.mean(errors**2) if name == "mse" else np.mean(np.abs(errors)))


METRICS = ("auc", "auc_pr", "precision", "recall", "accuracy", "mse", "mae")


def metric_value(name: str, task: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    """The named metric of `predictions` against `labels`.

    Raises UndefinedMetricError when the rows cannot define it (one class only) and ValueError for an
    unknown metric or one that does not fit the task.
    """
    _check_task(task)
    labels, predictions = _arrays(task, labels, predictions)
    if len(labels) == 0:
        raise UndefinedMetricError("no rows")
    if name == "auc":
        return _ranking_metric(roc_auc, task, labels, predictions)
    if name == "auc_pr":
        return _ranking_metric(average_precision, task, labels, predictions)
    if name in ("precision", "recall", "accuracy"):
        return _decision_metric(name, task, labels, predictions)
    if name in ("mse", "mae"):
        return _error_metric(name, task, labels, predictions)
    raise ValueError(f"unknown metric '{name}': expected one of {', '.join(METRICS)}")


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` interval of `values`; NaN (a resample where the metric is undefined) skipped."""
    values = values[~np.isnan(values)]
    if not values.size:
        raise UndefinedMetricError("the metric is undefined on every bootstrap resample")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _resampled_rows(rows: int, resamples: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, rows, size=rows)


def _resampled_values(
    name: str, task: str, labels: np.ndarray, predictions: np.ndarray, resamples: int, seed: int
) -> np.ndarray:
    """The metric on each bootstrap resample of the rows (NaN where the resample cannot define it);
    the same seed draws the same resamples."""
    drawn = _resampled_rows(len(labels), resamples, seed)
    if name == "auc" and task == BINARY and len(labels):
        return _binary_auc_of_resamples(labels, predictions, drawn)
    values = np.full(resamples, np.nan)
    for index, rows in enumerate(drawn):
        try:
            values[index] = metric_value(name, task, labels[rows], predictions[rows])
        except UndefinedMetricError:
            continue
    return values


def _binary_auc_of_resamples(labels: np.ndarray, scores: np.ndarray, drawn) -> np.ndarray:
    """`roc_auc` of each resample without ranking it again: a resample is the rows counted by how often
    each was drawn, and its AUC is the count-weighted Mann-Whitney statistic over the rows sorted once
    (ties, equal scores, count half). About five times faster than ranking each of 1,000 resamples."""
    order = np.argsort(np.asarray(scores, dtype=float), kind="mergesort")
    sorted_scores = np.asarray(scores, dtype=float)[order]
    tie_group = np.r_[0, np.cumsum(np.diff(sorted_scores) != 0)]
    positive = np.asarray(labels)[order].astype(bool)
    values = []
    for rows in drawn:
        counts = np.bincount(rows, minlength=len(order))[order]
        positives = np.bincount(tie_group, weights=counts * positive)
        negatives = np.bincount(tie_group, weights=counts * ~positive)
        pairs = positives.sum() * negatives.sum()
        below = np.cumsum(negatives) - negatives
        values.append(np.dot(positives, below + 0.5 * negatives) / pairs if pairs else np.nan)
    return np.array(values, dtype=float)


def bootstrap_interval(
    name: str,
    task: str,
    labels: np.ndarray,
    predictions: np.ndarray,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the metric over rows; resamples where it is undefined are skipped."""
    labels, predictions = _arrays(task, labels, predictions)
    return _percentiles(_resampled_values(name, task, labels, predictions, resamples, seed), level)


def paired_improvement_interval(
    name: str,
    task: str,
    higher_is_better: bool,
    labels: np.ndarray,
    model_predictions: np.ndarray,
    baseline_predictions: np.ndarray,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of how much the model beats the baseline, both scored on the same resampled rows.

    Positive means better: model - baseline when higher is better, baseline - model otherwise.
    """
    labels, model_predictions = _arrays(task, labels, model_predictions)
    baseline_predictions = _arrays(task, labels, baseline_predictions)[1]
    sign = 1.0 if higher_is_better else -1.0
    model = _resampled_values(name, task, labels, model_predictions, resamples, seed)
    baseline = _resampled_values(name, task, labels, baseline_predictions, resamples, seed)
    return _percentiles(sign * (model - baseline), level)


def paired_comparison(
    name: str,
    task: str,
    higher_is_better: bool,
    labels: np.ndarray,
    model_predictions: np.ndarray,
    baseline_predictions: np.ndarray,
) -> tuple[float, float, tuple[float, float]]:
    """(the model's metric, the baseline's, the 95% interval of the model's lead) on the same rows."""
    interval = paired_improvement_interval(
        name, task, higher_is_better, labels, model_predictions, baseline_predictions
    )
    return (
        metric_value(name, task, labels, model_predictions),
        metric_value(name, task, labels, baseline_predictions),
        (float(interval[0]), float(interval[1])),
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _threshold_row(threshold: float, positive: np.ndarray, flagged: np.ndarray) -> dict:
    tp = int(np.sum(flagged & positive))
    fp = int(np.sum(flagged & ~positive))
    fn = int(np.sum(~flagged & positive))
    tn = int(np.sum(~flagged & ~positive))
    return {
        "threshold": float(threshold),
        "flagged_fraction": float(np.mean(flagged)),
        "true_positive_rate": _ratio(tp, tp + fn),
        "false_positive_rate": _ratio(fp, fp + tn),
        "false_negative_rate": _ratio(fn, tp + fn),
        "precision": _ratio(tp, tp + fp),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def threshold_table(labels: np.ndarray, scores: np.ndarray, thresholds=None) -> list[dict]:
    """For a binary task, what each decision threshold (score >= threshold flags a row) would do.

    A rate whose denominator is empty (no positives, no negatives, nothing flagged) is None.
    """
    labels, scores = _arrays(BINARY, labels, scores)
    positive = labels.astype(int) == 1
    chosen = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    return [_threshold_row(t, positive, scores >= t) for t in chosen]


def _matrix(actual: np.ndarray, predicted: np.ndarray, names: list[str], threshold) -> dict:
    matrix = skm.confusion_matrix(actual, predicted, labels=list(range(len(names))))
    return {"labels": list(names), "matrix": matrix.astype(int).tolist(), "threshold": threshold}


def _names(class_names: list[str] | None, count: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(count)]
    if len(class_names) != count:
        raise ValueError(f"{len(class_names)} class names given for {count} classes")
    return [str(name) for name in class_names]


def confusion_matrix(
    task: str,
    labels: np.ndarray,
    predictions: np.ndarray,
    class_names: list[str] | None = None,
    threshold: float = DECISION_THRESHOLD,
) -> dict:
    """Counts of actual (rows) against predicted (columns) classes.

    Binary decides at `threshold`; multiclass by argmax (threshold None); multilabel gives one 2x2 matrix
    per label under "per_label", keyed by label name (`class_names` names the labels there).
    """
    _check_task(task)
    labels, predictions = _arrays(task, labels, predictions)
    if task == REGRESSION:
        raise ValueError("a confusion matrix needs a classification task, not regression")
    if task == BINARY:
        names = _names(class_names, 2)
        return _matrix(labels.astype(int), _binary_decisions(predictions, threshold), names, threshold)
    if task == MULTICLASS:
        names = _names(class_names, predictions.shape[1])
        return _matrix(labels.astype(int), np.argmax(predictions, axis=1), names, None)
    label_names = _names(class_names, predictions.shape[1])
    decided = _binary_decisions(predictions, threshold)
    return {
        "per_label": {
            name: _matrix(labels[:, j].astype(int), decided[:, j], ["0", "1"], threshold)
            for j, name in enumerate(label_names)
        }
    }


def _failure_ranking(task: str, labels: np.ndarray, predictions: np.ndarray):
    """(wrong rows mask, confidence per row): how sure the model was of its wrong answer.

    Binary and multilabel: the probability given to the wrong side (0.5 + the largest |p - 0.5| among the
    wrong labels); multiclass: the probability of the predicted class; regression: the absolute error.
    """
    if task == BINARY:
        wrong = _binary_decisions(predictions) != labels.astype(int)
        return wrong, 0.5 + np.abs(predictions - 0.5)
    if task == MULTICLASS:
        return np.argmax(predictions, axis=1) != labels.astype(int), np.max(predictions, axis=1)
    if task == MULTILABEL:
        wrong_cells = _binary_decisions(predictions) != labels.astype(int)
        margins = np.where(wrong_cells, np.abs(predictions - 0.5), -np.inf)
        return wrong_cells.any(axis=1), 0.5 + margins.max(axis=1)
    return np.ones(len(labels), dtype=bool), np.abs(predictions - labels.astype(float))


def _plain(value):
    """numpy scalars and arrays as JSON-able Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def confident_failures(task: str, labels: np.ndarray, predictions: np.ndarray, k: int = 10) -> list[dict]:
    """The k wrong rows the model was surest about, most confident first.

    Each dict has `index` (the row in the arrays), `label`, `prediction` and `confidence` (for regression the
    absolute error). Ties keep row order.
    """
    _check_task(task)
    labels, predictions = _arrays(task, labels, predictions)
    wrong, confidence = _failure_ranking(task, labels, predictions)
    candidates = np.flatnonzero(wrong)
    ranked = candidates[np.argsort(-confidence[candidates], kind="stable")][:k]
    return [
        {
            "index": int(row),
            "label": _plain(labels[row]),
            "prediction": _plain(predictions[row]),
            "confidence": float(confidence[row]),
        }
        for row in ranked
    ]


def _numeric_bins(values: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Bin ids: up to LEAKAGE_BINS quantile bins cut on the fit rows, and one more bin for missing values."""
    values = values.astype(float)
    present = ~np.isnan(values)
    fitted = values[fit_rows][present[fit_rows]]
    if fitted.size == 0:
        return np.where(present, 0, 1)
    edges = np.unique(np.quantile(fitted, np.linspace(0.0, 1.0, LEAKAGE_BINS + 1)))[1:-1]
    bins = np.searchsorted(edges, np.where(present, values, 0.0), side="right")
    return np.where(present, bins, edges.size + 1)


def _categorical_bins(values: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Bin ids: one per value seen at least RARE_CATEGORY_ROWS times in the fit rows; rare or unseen values
    share bin 1 and the missing value ("") has bin 0."""
    text = values.astype(str)
    seen, counts = np.unique(text[fit_rows], return_counts=True)
    common = {value: i + 2 for i, value in enumerate(seen[counts >= RARE_CATEGORY_ROWS]) if value != ""}
    return np.array([0 if value == "" else common.get(value, 1) for value in text])


def _bin_means(bins: np.ndarray, targets: np.ndarray, fit_rows: np.ndarray, score_rows: np.ndarray):
    """Each score row's prediction: the mean target of its bin over the fit rows (the overall fit mean for a
    bin with no fit rows). `targets` is [n, c]; the result is [len(score_rows), c]."""
    fit_bins, fit_targets = bins[fit_rows], targets[fit_rows]
    width = int(bins.max()) + 1
    counts = np.bincount(fit_bins, minlength=width).astype(float)
    sums = np.stack(
        [np.bincount(fit_bins, fit_targets[:, c], minlength=width) for c in range(targets.shape[1])]
    )
    overall = fit_targets.mean(axis=0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1.0), overall[:, None]).T
    return means[bins[score_rows]]


def _target_columns(task: str, labels: np.ndarray) -> np.ndarray:
    if task == MULTICLASS:
        return _one_hot(labels, int(labels.max()) + 1).astype(float)
    if task == MULTILABEL:
        return labels.astype(float)
    return labels.astype(float).reshape(-1, 1)


def _held_out_score(task: str, held_out_labels: np.ndarray, predicted: np.ndarray) -> float:
    if task == BINARY:
        return roc_auc(held_out_labels.astype(int), predicted[:, 0])
    if task == MULTILABEL:
        return _macro_ranking(roc_auc, held_out_labels.astype(int), predicted)
    if task == MULTICLASS:
        return float(np.mean(np.argmax(predicted, axis=1) == held_out_labels.astype(int)))
    return float(skm.r2_score(held_out_labels.astype(float), predicted[:, 0]))


def _split_rows(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(rows)
    return order[: rows // 2], order[rows // 2 :]


def leakage_scores(
    task: str, feature_values: dict[str, np.ndarray], labels: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """How well each feature alone predicts the label, scored on rows it was not fitted on.

    Each feature is cut into bins (quantile bins plus a missing bin for numbers; frequent values, a pooled
    rare bin and a missing bin for strings). Each bin's label mean (per class) is learnt on one random half
    of the rows and used as the prediction on the other half, so a column that is unique per row (an ID)
    scores like chance instead of looking perfect. Score: binary AUC, multilabel mean AUC over labels,
    multiclass accuracy of the bin's majority class (which is at least the majority class's share, so with
    very imbalanced classes a useless feature scores high), regression R^2. A feature whose score is
    undefined (for example one class only among the held-out rows) is left out.
    """
    _check_task(task)
    labels = np.asarray(labels)
    if task != MULTILABEL:
        labels = labels.reshape(len(labels))
    fit_rows, score_rows = _split_rows(len(labels), seed)
    targets = _target_columns(task, labels)
    scores = {}
    for name, raw in feature_values.items():
        values = np.asarray(raw).reshape(len(labels))
        split = _categorical_bins if values.dtype.kind in "OUS" else _numeric_bins
        predicted = _bin_means(split(values, fit_rows), targets, fit_rows, score_rows)
        try:
            scores[name] = _held_out_score(task, labels[score_rows], predicted)
        except UndefinedMetricError:
            continue
    return scores


def leakage_warnings(
    task: str, feature_values: dict[str, np.ndarray], labels: np.ndarray, limit: float = LEAKAGE_LIMIT
) -> list[dict]:
    """Features that alone predict the label at least as well as `limit`, highest score first."""
    scores = leakage_scores(task, feature_values, labels)
    measure = LEAKAGE_MEASURES[task]
    flagged = sorted(((s, n) for n, s in scores.items() if s >= limit), reverse=True)
    return [
        {
            "feature": name,
            "score": score,
            "measure": measure,
            "message": (
                f"feature '{name}' alone predicts the label with {measure} {score:.2f} on held-out rows: "
                "likely target leakage; exclude it unless it is known at prediction time"
            ),
        }
        for score, name in flagged
    ]


def task_arrays(spec: ProblemSpec, labels: np.ndarray) -> np.ndarray:
    """Labels of shape [rows, outputs] in the shape the functions here take (a vector unless multilabel)."""
    return labels if spec.task == TaskType.MULTILABEL else labels[:, 0]


def prediction_arrays(spec: ProblemSpec, predictions: np.ndarray) -> np.ndarray:
    """A model's [rows, outputs] predictions in the shape the functions here take."""
    if spec.task in (TaskType.BINARY, TaskType.REGRESSION):
        return predictions[:, 0]
    return predictions
