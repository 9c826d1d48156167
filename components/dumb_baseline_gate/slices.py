"""Slices that gate: the spec's metric on each slice of a gated column (each of its values) of the test
split, against the floor `evaluation.slice_thresholds` sets for that column; and for a binary classifier,
the gaps in false-positive and false-negative rates across the groups of each `evaluation.sensitive` column.

TFMA reports the same slices; its per-slice thresholds are not used for the gate because its way to skip
small slices (`min_slice_size`) makes every skipped slice fail validation ("Metric not found"), and a slice
of a dozen rows has no metric worth gating on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from components.core.spec import ProblemSpec
from components.scoring import metrics
from components.scoring.metrics import prediction_arrays, task_arrays


@dataclass(frozen=True)
class SliceCheck:
    """One slice: its column and value, test rows, the metric on them and the floor it must reach."""

    column: str
    value: str
    rows: int
    metric: float | None  # None: undefined on these rows (AUC of a slice holding one class)
    floor: float
    passed: bool

    def describe(self, metric_name: str, higher_is_better: bool) -> str:
        if self.metric is None:
            return (
                f"slice {self.column} = {self.value} ({self.rows} rows): {metric_name} undefined, not gated"
            )
        bound = "at least" if higher_is_better else "at most"
        verdict = "passes" if self.passed else "fails"
        return (
            f"slice {self.column} = {self.value} ({self.rows} rows): {metric_name} {self.metric:.4f} "
            f"{verdict} evaluation.slice_thresholds ({bound} {self.floor:g})"
        )

    def to_json(self) -> dict:
        return asdict(self)


def column_text(column: tf.Tensor | tf.SparseTensor, rows: int) -> np.ndarray:
    """A parsed `[n, 1]` column as one text per row ('' where the value is missing)."""
    if isinstance(column, tf.SparseTensor):
        column = tf.sparse.to_dense(
            tf.sparse.reset_shape(column, [rows, 1]), default_value="" if column.dtype == tf.string else 0
        )
    values = column.numpy().reshape(rows, -1)[:, 0]
    return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else f"{v:g}" for v in values])


def slice_checks(
    spec: ProblemSpec, parsed: dict, labels: np.ndarray, predictions: np.ndarray
) -> list[SliceCheck]:
    """Every slice of the gated columns with at least `evaluation.slice_min_rows` test rows."""
    checks = []
    higher = spec.metric.higher_is_better
    for column, floor in spec.evaluation.slice_thresholds.items():
        values = column_text(parsed[column], len(labels))
        for value in sorted(set(values) - {""}):
            rows = values == value
            if rows.sum() < spec.evaluation.slice_min_rows:
                continue
            metric = _metric(spec, labels[rows], predictions[rows])
            passed = metric is None or (metric >= floor if higher else metric <= floor)
            checks.append(SliceCheck(column, value, int(rows.sum()), metric, floor, passed))
    return checks


def _metric(spec: ProblemSpec, labels: np.ndarray, predictions: np.ndarray) -> float | None:
    try:
        value = metrics.metric_value(
            spec.metric.name, spec.task.value, task_arrays(spec, labels), prediction_arrays(spec, predictions)
        )
    except ValueError:  # undefined on these rows: one class only
        return None
    return None if np.isnan(value) else float(value)


def failures_message(spec: ProblemSpec, checks: list[SliceCheck]) -> str:
    """'' when every gated slice passes; else the failing slices with their figures."""
    failed = [c.describe(spec.metric.name, spec.metric.higher_is_better) for c in checks if not c.passed]
    return "; ".join(failed)


@dataclass(frozen=True)
class GroupRates:
    """A binary classifier's error rates on one group of a sensitive column (None: no such rows)."""

    column: str
    value: str
    rows: int
    false_positive_rate: float | None
    false_negative_rate: float | None


def group_rates(
    spec: ProblemSpec, parsed: dict, labels: np.ndarray, predictions: np.ndarray
) -> list[GroupRates]:
    """FPR and FNR at the 0.5 decision threshold for each group with at least `slice_min_rows` rows."""
    if spec.evaluation.sensitive is None:
        return []
    actual = labels.reshape(-1) == 1
    decided = predictions.reshape(-1) >= 0.5
    found = []
    for column in spec.evaluation.sensitive.features:
        values = column_text(parsed[column], len(labels))
        for value in sorted(set(values) - {""}):
            rows = values == value
            if rows.sum() < spec.evaluation.slice_min_rows:
                continue
            negatives, positives = rows & ~actual, rows & actual
            fpr = float((decided & negatives).sum() / negatives.sum()) if negatives.any() else None
            fnr = float((~decided & positives).sum() / positives.sum()) if positives.any() else None
            found.append(GroupRates(column, value, int(rows.sum()), fpr, fnr))
    return found


def rate_gaps_message(spec: ProblemSpec, groups: list[GroupRates]) -> str:
    """'' when every sensitive column's groups are within `max_gap`; else each gap over it, with figures."""
    if spec.evaluation.sensitive is None:
        return ""
    problems = []
    for column in spec.evaluation.sensitive.features:
        for rate, name in (
            ("false_positive_rate", "false-positive"),
            ("false_negative_rate", "false-negative"),
        ):
            measured = [
                (getattr(g, rate), g.value)
                for g in groups
                if g.column == column and getattr(g, rate) is not None
            ]
            if len(measured) < 2:
                continue
            (low, low_group), (high, high_group) = min(measured), max(measured)
            if high - low > spec.evaluation.sensitive.max_gap:
                problems.append(
                    f"{column}: {name} rate {high:.3f} for {high_group} against {low:.3f} for {low_group}, "
                    f"a gap of {high - low:.3f} over evaluation.sensitive.max_gap = "
                    f"{spec.evaluation.sensitive.max_gap:g}"
                )
    return "; ".join(problems)
