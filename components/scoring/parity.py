"""The parity gate: every target against the SavedModel on the test split, with the spec's metric."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import types
from tfx.types import artifact_utils

from components.core import evaluation
from components.core.artifacts import raw_input_columns
from components.core.models_config import target_name
from components.core.spec import ProblemSpec, TaskType
from components.modules.datetimes import unix_seconds
from components.modules.preprocessing_fn import as_text
from components.scoring import metrics

TEST_SPLIT = "test"
TRAIN_SPLIT = "train"
CALIBRATION_ROWS = 500
CALIBRATION_POOL = 50_000  # training rows read to draw the calibration rows from
LOSS_SLACK = 1e-12  # relative float rounding: a loss of exactly the allowed one (0.95 - 0.94) passes
# How far the raw-feature signature may predict from serving_default on a test row, times the largest
# prediction's size (at least 1): float rounding, where both run the same graph on the same values.
SIGNATURE_TOLERANCE = 1e-4


@dataclass
class TargetReport:
    """One deployment target's figures on the test split, and whether it may be pushed."""

    target: str  # serving, tflite or tfjs
    variant: str  # savedmodel, float32, dynamic, int8, float16, uint8
    path: str  # relative to the version folder once pushed ("" for the SavedModel itself)
    runtime: str
    size_bytes: int = 0
    metric: float | None = None
    max_abs_diff: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    passed: bool = False
    reason: str = ""
    allowed_loss: float | None = None  # the most the metric may lose: the tolerance in the metric's units
    reference_mae: float | None = None  # the SavedModel's mean absolute error on the test split
    max_abs_diff_flagged: bool = False  # max_abs_diff exceeds reference_mae (recorded, not refused)

    @property
    def name(self) -> str:
        return target_name(asdict(self))

    def to_json(self) -> dict:
        return asdict(self)


def split_records(examples: list[types.Artifact], split: str) -> list[str]:
    """The TFRecord files of one split across every Examples artifact (a window holds several)."""
    files = []
    for artifact in examples:
        folder = artifact_utils.get_split_uri([artifact], split)
        files += sorted(os.path.join(folder, name) for name in tf.io.gfile.listdir(folder))
    return files


def read_serialized(files: list[str], limit: int | None = None) -> list[bytes]:
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if limit is not None:
        dataset = dataset.take(limit)
    return [record.numpy() for record in dataset]


def raw_inputs(serialized: list[bytes], tft_output: tft.TFTransformOutput, input_dtypes: dict[str, tf.DType]):
    """(`[n, 1]` arrays for the raw-feature signature, the parsed examples). `input_dtypes` is keyed by
    the signature's input names (or by column names: the arrays are then keyed by those)."""
    raw_spec = tft_output.raw_feature_spec()
    parsed = tf.io.parse_example(tf.constant(serialized), raw_spec)
    count = len(serialized)
    columns = raw_input_columns(raw_spec)
    inputs = {}
    for name, dtype in input_dtypes.items():
        if dtype == tf.int32:  # a date-time: Unix seconds, read from the cell as the graph reads it
            inputs[name] = _unix_seconds(parsed[columns.get(name, name)], count)
            continue
        column = parsed[columns.get(name, name)]
        if isinstance(column, tf.SparseTensor):
            if column.dtype != tf.string and dtype == tf.string:
                column = tf.SparseTensor(column.indices, as_text(column.values), column.dense_shape)
            missing = "" if dtype == tf.string else math.nan
            column = tf.sparse.to_dense(
                tf.sparse.reset_shape(tf.cast(column, dtype) if dtype != tf.string else column, [count, 1]),
                default_value=missing,
            )
        values = column.numpy().reshape(count, 1)
        inputs[name] = values.astype(object) if dtype == tf.string else values.astype(np.float32)
    return inputs, parsed


def _unix_seconds(column: tf.Tensor | tf.SparseTensor, count: int) -> np.ndarray:
    """`[n, 1]` int32 Unix seconds of a date-time column (ISO text or seconds); missing as the graph's."""
    cells: list = [None] * count
    if isinstance(column, tf.SparseTensor):
        for (row, _), value in zip(column.indices.numpy(), column.values.numpy(), strict=True):
            cells[row] = value.decode() if isinstance(value, bytes) else value
    else:
        cells = [v.decode() if isinstance(v, bytes) else v for v in column.numpy().reshape(-1)]
    return np.array([unix_seconds(cell) for cell in cells], dtype=np.int32).reshape(count, 1)


def labels(parsed: dict, tft_output: tft.TFTransformOutput, spec: ProblemSpec) -> np.ndarray:
    """The labels as the model was trained on them (TF Transform's encoding)."""
    transformed = tft_output.transform_raw_features(parsed, drop_unused_features=True)
    columns = [tf.cast(tf.reshape(transformed[name], [-1, 1]), tf.float32) for name in spec.label_columns]
    return tf.concat(columns, axis=1).numpy()


def calibration_inputs(
    examples: list[types.Artifact], tft_output: tft.TFTransformOutput, input_dtypes: dict[str, tf.DType]
) -> dict[str, np.ndarray]:
    """Training rows for int8 calibration (never test rows), drawn at random from the split: the first
    rows of a file are whatever order it was written in, not a sample. Arrays as `raw_inputs` makes them,
    one row per calibration example."""
    serialized = read_serialized(split_records(examples, TRAIN_SPLIT), CALIBRATION_POOL)
    chosen = np.random.default_rng(0).permutation(len(serialized))[:CALIBRATION_ROWS]
    inputs, _ = raw_inputs([serialized[i] for i in sorted(chosen)], tft_output, input_dtypes)
    return inputs


def metric_value(spec: ProblemSpec, label_values: np.ndarray, predictions: np.ndarray) -> float:
    """The spec's metric as the Evaluator's Keras metric computes it.

    Run eagerly without AutoGraph: Keras converts a metric's update with AutoGraph on first use otherwise,
    about 5 s of a process's time for the same eager operations (the same value).
    """
    metric = evaluation.keras_metric(spec)
    labels_seen = label_values[:, 0] if spec.task == TaskType.MULTICLASS else label_values

    @tf.autograph.experimental.do_not_convert
    def value() -> float:
        metric.update_state(labels_seen, predictions)
        return float(metric.result().numpy())

    return value()


def tolerance_kind(spec: ProblemSpec) -> str:
    """'absolute' for a metric in [0, 1], 'relative' (to the SavedModel's value) for mse and mae."""
    return "absolute" if spec.metric.bounded else "relative"


def allowed_loss(spec: ProblemSpec, reference: float) -> float:
    """The most a target's metric may lose against the SavedModel's `reference`, in the metric's units.

    An absolute 0.01 is a sensible loss of AUC but nothing for an MAE of 148 dollars, so for an unbounded
    metric the tolerance is a fraction of the reference: |target - reference| <= tolerance * |reference|
    (a reference of 0, a perfect fit, allows no loss).
    """
    tolerance = spec.deployment.parity.tolerance
    return tolerance if spec.metric.bounded else tolerance * abs(reference)


def passes(spec: ProblemSpec, reference: float, value: float) -> tuple[bool, str]:
    """Whether `value` is within the parity tolerance of the SavedModel's `reference` metric."""
    name = spec.metric.name
    if not math.isfinite(value):
        return False, f"{name} is {value}: the target's predictions are not finite"
    loss = reference - value if spec.metric.higher_is_better else value - reference
    allowed = allowed_loss(spec, reference)
    if loss - allowed > LOSS_SLACK * max(1.0, abs(reference)):
        return False, (
            f"{name} {value:.4f} is {loss:.4f} worse than the SavedModel's {reference:.4f}, more than the "
            f"{allowed:.4f} allowed ({_tolerance_text(spec)})"
        )
    return True, ""


def _tolerance_text(spec: ProblemSpec) -> str:
    tolerance = spec.deployment.parity.tolerance
    setting = f"deployment.parity.tolerance = {tolerance:g}"
    if spec.metric.bounded:
        return f"{setting}, absolute for {spec.metric.name}"
    return f"{setting}, relative for {spec.metric.name}: {tolerance * 100:g}% of the SavedModel's value"


def mean_abs_error(spec: ProblemSpec, label_values: np.ndarray, predictions: np.ndarray) -> float:
    """The mean |label - prediction| over the test rows: in the label's units for regression, in
    probability for a classifier (against the one-hot class for multiclass)."""
    return metrics.metric_value(
        "mae",
        spec.task.value,
        metrics.task_arrays(spec, label_values),
        metrics.prediction_arrays(spec, predictions),
    )


def max_row_difference(predictions: np.ndarray, reference_predictions: np.ndarray) -> float:
    """The largest |target - SavedModel| over every test row and output (NaN when a prediction is)."""
    differences = np.abs(np.asarray(predictions, float) - np.asarray(reference_predictions, float))
    return float(np.max(differences)) if differences.size else 0.0


def signature_disagreement(raw_predictions: np.ndarray, served_predictions: np.ndarray) -> str:
    """Why no device target may be pushed: "" when the raw-feature signature (what TFLite and TF.js are
    built from and judged against) predicts what `serving_default` (TF Serving, the Evaluator) predicts
    on every test row, within `SIGNATURE_TOLERANCE`. Else a device model would answer otherwise than
    the server, however well it matched the signature it was converted from."""
    raw, served = np.asarray(raw_predictions, float), np.asarray(served_predictions, float)
    by_row = np.abs(raw - served).reshape(len(raw), -1).max(axis=1) if raw.size else np.zeros(0)
    limit = SIGNATURE_TOLERANCE * max(1.0, float(np.max(np.abs(served)))) if served.size else 0.0
    if not by_row.size or by_row.max() <= limit:
        return ""
    row = int(np.argmax(by_row))
    return (
        f"the raw-feature signature it is built from predicts {by_row[row]:.4g} away from serving_default "
        f"on test row {row} (at most {limit:.2g} allowed): a device would not answer what TF Serving "
        "answers; the raw signature's preprocessing differs from the Transform graph's (a bug to report)"
    )


def row_difference_flagged(max_abs_diff: float, reference_mae: float) -> bool:
    """A row moved further from the SavedModel's prediction than the SavedModel's typical error: the
    metric may still pass (one row hides in an average), so the target is flagged, not refused."""
    return not max_abs_diff <= reference_mae


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else math.nan
