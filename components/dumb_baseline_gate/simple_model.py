"""A simple-model baseline beside the dumb one: gradient-boosted trees on the same rows.

Full Stack Deep Learning's "internal baselines: simple models": scikit-learn's HistGradientBoosting
(default settings) fitted on the training rows the network trained on and scored on the test rows the
gate and the Evaluator score the network on. It informs the user (CLI summary, report); it never
replaces the network or opens or closes a gate.

The trees read the raw feature values the network's raw signature takes: numbers as numbers (missing
as NaN), text categories through an ordinal code (native categorical splits; unseen and missing as NaN),
date-times as Unix seconds.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

import numpy as np

from components.core.spec import ProblemSpec, TaskType
from components.modules.datetimes import MISSING_SECONDS
from components.scoring import metrics
from components.scoring.metrics import prediction_arrays, task_arrays

DESCRIPTION = "gradient-boosted trees (scikit-learn HistGradientBoosting, default settings)"
MAX_CATEGORIES = 250  # HistGradientBoosting bins a categorical feature into at most 255 codes
SEED = 0


@dataclass
class SimpleModelComparison:
    metric: str
    description: str
    model_metric: float
    simple_metric: float
    improvement_interval: tuple[float, float]  # the network minus the trees, oriented so higher is better
    train_rows: int
    test_rows: int
    test_rows_sha256: str  # of the serialized test examples, in order: which rows were scored
    fit_seconds: float

    @property
    def network_worse(self) -> bool:
        """The network is worse than the trees beyond the 95% interval of the difference."""
        return self.improvement_interval[1] < 0

    @property
    def message(self) -> str:
        low, high = self.improvement_interval
        figures = (
            f"the network: {self.metric} {self.model_metric:.4f}; gradient-boosted trees: "
            f"{self.simple_metric:.4f} on the same {self.test_rows} test rows "
            f"(95% interval of the network's lead [{low:.4f}, {high:.4f}])"
        )
        if self.network_worse:
            return (
                f"WORSE THAN A SIMPLE MODEL: {figures}; more capacity, tuning (the `tuning` section) or "
                "other features may close the gap"
            )
        return figures

    def to_json(self) -> dict:
        return {**asdict(self), "network_worse": self.network_worse, "message": self.message}


def rows_digest(serialized: list[bytes]) -> str:
    """A fingerprint of which rows were scored, in order (the test split's serialized examples)."""
    digest = hashlib.sha256()
    for record in serialized:
        digest.update(hashlib.sha256(record).digest())
    return digest.hexdigest()


def as_text(values: np.ndarray) -> np.ndarray:
    """Text cells as str: the gate's raw inputs hold bytes (as TensorFlow parses them), tests hold str."""
    return np.array(
        [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values], dtype=object
    )


class FeatureTable:
    """The raw inputs as one float matrix for the trees: text columns as ordinal codes learned on the
    training rows (the most frequent MAX_CATEGORIES kept; others, unseen and missing as NaN)."""

    def __init__(self, train_inputs: dict[str, np.ndarray]):
        self.names = sorted(train_inputs)
        self.codes: dict[str, dict[str, int]] = {}
        for name in self.names:
            values = train_inputs[name][:, 0]
            if values.dtype == object:
                text = as_text(values)
                present = text[text != ""].astype(str)
                kept, counts = np.unique(present, return_counts=True)
                order = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
                self.codes[name] = {kept[i]: code for code, i in enumerate(order)}

    @property
    def categorical(self) -> list[bool]:
        return [name in self.codes for name in self.names]

    def matrix(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        columns = []
        for name in self.names:
            values = inputs[name][:, 0]
            if name in self.codes:
                codes = self.codes[name]
                columns.append(np.array([codes.get(v, np.nan) for v in as_text(values)], dtype=np.float64))
            elif values.dtype == np.int32:
                columns.append(np.where(values == MISSING_SECONDS, np.nan, values).astype(np.float64))
            else:
                columns.append(values.astype(np.float64))
        return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def fit_and_predict(
    spec: ProblemSpec, table: FeatureTable, train_x: np.ndarray, train_labels: np.ndarray, test_x: np.ndarray
) -> np.ndarray:
    """The trees' predictions for the test rows, shaped as the network's: [n, 1] probability of the
    positive class or value, [n, K] class probabilities, [n, L] label probabilities (one model each)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    options = {"categorical_features": table.categorical or None, "random_state": SEED}
    if spec.task == TaskType.REGRESSION:
        model = HistGradientBoostingRegressor(
            loss="absolute_error" if spec.metric.name == "mae" else "squared_error", **options
        )
        return model.fit(train_x, train_labels[:, 0]).predict(test_x).reshape(-1, 1)
    if spec.task == TaskType.MULTICLASS:
        width = int(train_labels[:, 0].max()) + 1
        model = HistGradientBoostingClassifier(**options).fit(train_x, train_labels[:, 0].astype(int))
        probabilities = np.zeros((len(test_x), width))
        probabilities[:, model.classes_] = model.predict_proba(test_x)
        return probabilities
    columns = []
    for column in range(train_labels.shape[1]):  # binary: one column; multilabel: one model per label
        target = train_labels[:, column].astype(int)
        if len(np.unique(target)) < 2:
            columns.append(np.full(len(test_x), float(target[0])))
            continue
        model = HistGradientBoostingClassifier(**options).fit(train_x, target)
        columns.append(model.predict_proba(test_x)[:, 1])
    return np.stack(columns, axis=1)


def compare_with_trees(
    spec: ProblemSpec,
    train_inputs: dict[str, np.ndarray],
    train_labels: np.ndarray,
    test_inputs: dict[str, np.ndarray],
    test_labels: np.ndarray,
    model_predictions: np.ndarray,
    test_serialized: list[bytes],
) -> SimpleModelComparison:
    started = time.monotonic()
    table = FeatureTable(train_inputs)
    trees = fit_and_predict(spec, table, table.matrix(train_inputs), train_labels, table.matrix(test_inputs))
    seconds = time.monotonic() - started
    name, task, higher = spec.metric.name, spec.task.value, spec.metric.higher_is_better
    y = task_arrays(spec, test_labels)
    network, simple = prediction_arrays(spec, model_predictions), prediction_arrays(spec, trees)
    model_metric, simple_metric, interval = metrics.paired_comparison(name, task, higher, y, network, simple)
    return SimpleModelComparison(
        metric=name,
        description=DESCRIPTION,
        model_metric=model_metric,
        simple_metric=simple_metric,
        improvement_interval=interval,
        train_rows=len(train_labels),
        test_rows=len(test_labels),
        test_rows_sha256=rows_digest(test_serialized),
        fit_seconds=round(seconds, 2),
    )
