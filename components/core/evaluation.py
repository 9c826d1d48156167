"""The Evaluator's TFMA configuration, derived from the spec: metrics, the success threshold, and
the no-regression check against the model in production."""

from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from components.core.artifacts import PREDICTIONS_KEY
from components.core.spec import ProblemSpec, TaskType

# A SavedModel called through its signature. Left to guess, TFMA tries Keras first, and a Keras model
# is revived with every layer re-traced through AutoGraph, once to guess and once per Beam stage (9 loads,
# two thirds of the Evaluator's time on the taxi data); the metrics are all configured here, none is the
# model's own.
MODEL_TYPE = "tf_generic"
# The final model is evaluated once, on the test split (tuning and early stopping never see it).
EVAL_SPLIT = "test"
# spec metric name -> (TFMA/Keras metric class, its key in TFMA's results), per task where they differ
_METRIC_CLASSES: dict[str, tuple[str, str]] = {
    "auc": ("AUC", "auc"),
    "auc_pr": ("AUC", "auc_pr"),
    "precision": ("Precision", "precision"),
    "recall": ("Recall", "recall"),
    "mse": ("MeanSquaredError", "mean_squared_error"),
    "mae": ("MeanAbsoluteError", "mean_absolute_error"),
}
DEFAULT_METRICS: dict[TaskType, list[str]] = {
    TaskType.BINARY: ["auc", "auc_pr", "precision", "recall", "accuracy"],
    TaskType.MULTILABEL: ["auc", "auc_pr"],
    TaskType.MULTICLASS: ["accuracy"],
    TaskType.REGRESSION: ["mse", "mae"],
}
# The Evaluator also reports the task's training loss on the test split, under the name Keras gives it.
_LOSS_CLASSES: dict[TaskType, str] = {
    TaskType.BINARY: "BinaryCrossentropy",
    TaskType.MULTILABEL: "BinaryCrossentropy",
    TaskType.MULTICLASS: "SparseCategoricalCrossentropy",
}


def metric_class(name: str, task: TaskType) -> tuple[str, str]:
    """(TFMA metric class, result key) for a spec metric name."""
    if name == "accuracy":
        if task == TaskType.MULTICLASS:
            return "SparseCategoricalAccuracy", "sparse_categorical_accuracy"
        return "BinaryAccuracy", "binary_accuracy"
    return _METRIC_CLASSES[name]


def metric_key(spec: ProblemSpec) -> str:
    """The key of the spec's metric of success in TFMA's results."""
    return metric_class(spec.metric.name, spec.task)[1]


def _metric_settings(name: str, task: TaskType) -> tuple[str, dict]:
    """(Keras metric class, its constructor arguments): what TFMA computes for a spec metric name."""
    class_name, key = metric_class(name, task)
    config = {"name": key}
    if name == "auc_pr":
        config["curve"] = "PR"
    if class_name == "AUC":
        config["num_thresholds"] = 1000
    return class_name, config


def keras_metric(spec: ProblemSpec):
    """The spec's metric as a Keras metric, configured as the Evaluator's (for checks outside TFMA)."""
    import tf_keras as keras

    class_name, config = _metric_settings(spec.metric.name, spec.task)
    if class_name == "AUC" and spec.task == TaskType.MULTILABEL:
        config["multi_label"] = True
    return getattr(keras.metrics, class_name)(**config)


def _metric_config(name: str, spec: ProblemSpec) -> tfma.MetricConfig:
    class_name, config = _metric_settings(name, spec.task)
    threshold = None
    if name == spec.metric.name:
        higher = spec.metric.higher_is_better
        value = tfma.GenericValueThreshold(
            **(
                {"lower_bound": {"value": spec.metric.threshold}}
                if higher
                else {"upper_bound": {"value": spec.metric.threshold}}
            )
        )
        change = tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER
            if higher
            else tfma.MetricDirection.LOWER_IS_BETTER,
            absolute={"value": -1e-10 if higher else 1e-10},
        )
        # Judged on the whole test split only: the per-slice figures are for the report.
        threshold = tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(value_threshold=value, change_threshold=change),
        )
    return tfma.MetricConfig(
        class_name=class_name,
        config=json.dumps(config),
        per_slice_thresholds=[threshold] if threshold else [],
    )


def eval_config(spec: ProblemSpec) -> tfma.EvalConfig:
    names = list(dict.fromkeys([spec.metric.name, *DEFAULT_METRICS[spec.task]]))
    metrics = [tfma.MetricConfig(class_name="ExampleCount")]
    metrics += [_metric_config(name, spec) for name in names]
    if spec.task in _LOSS_CLASSES:
        metrics.append(
            tfma.MetricConfig(class_name=_LOSS_CLASSES[spec.task], config=json.dumps({"name": "loss"}))
        )
    if spec.task == TaskType.MULTILABEL:
        # One output per label (the serving signature exposes each label's column by its name).
        labels = spec.label_columns
        model_spec = tfma.ModelSpec(
            signature_name="serving_default",
            label_keys={label: label for label in labels},
            prediction_keys={label: label for label in labels},
            preprocessing_function_names=[],
            model_type=MODEL_TYPE,
        )
        metrics_spec = tfma.MetricsSpec(metrics=metrics, output_names=labels)
    else:
        model_spec = tfma.ModelSpec(
            signature_name="serving_default",
            label_key=spec.label_columns[0],
            prediction_key=PREDICTIONS_KEY,
            preprocessing_function_names=[],
            model_type=MODEL_TYPE,
        )
        metrics_spec = tfma.MetricsSpec(metrics=metrics)
    return tfma.EvalConfig(
        model_specs=[model_spec],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[feature]) for feature in spec.evaluation.sliced_features],
        metrics_specs=[metrics_spec],
    )


# Readers of the Evaluator's output (TFMA's files), for the report and the run summary.


def slice_metrics(by_output: dict) -> dict[str, float]:
    """The numeric metrics of one TFMA slice, keyed `output/name` (just `name` for a single output)."""
    metrics: dict[str, float] = {}
    for output_name, by_sub_key in by_output.items():
        for values in by_sub_key.values():
            for name, value in values.items():
                if isinstance(value, dict) and "doubleValue" in value:
                    metrics[f"{output_name}/{name}" if output_name else name] = float(value["doubleValue"])
    return metrics


def read_evaluation(uri: str) -> tuple[dict[str, float], list[str]]:
    """Overall metrics of an Evaluator output, and why validation failed (empty when it passed)."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(uri)
    metrics = next((slice_metrics(by_output) for key, by_output in result.slicing_metrics if key == ()), {})
    failures = []
    validation = tfma.load_validation_result(uri)
    if not validation.validation_ok:
        for per_slice in validation.metric_validations_per_slice:
            for failure in per_slice.failures:
                failures.append(
                    f"{failure.metric_key.name}: {failure.metric_value.double_value.value:.4f} "
                    f"fails {failure.message or _threshold_text(failure.metric_threshold)}"
                )
        if validation.missing_thresholds:
            failures.append("some thresholds had no metric to check")
    return metrics, failures


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        bound = threshold.value_threshold
        if bound.HasField("lower_bound"):
            return f"the threshold (at least {bound.lower_bound.value:g})"
        if bound.HasField("upper_bound"):
            return f"the threshold (at most {bound.upper_bound.value:g})"
    if threshold.HasField("change_threshold"):
        return "the no-regression check against the model in production"
    return "its threshold"
