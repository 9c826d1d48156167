"""DumbBaselineGate executor: score the model and the dumb baseline on the test split, bless or not; score a
simple model (gradient-boosted trees) on the same rows beside them, to inform."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_transform as tft
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.core.artifacts import (
    BASELINE_BLESSING_KEY,
    IMPORTANCE_FILE,
    POWER_FILE,
    TEST_PREDICTIONS_FILE,
    TEST_PREDICTIONS_KEY,
    problem_spec,
)
from components.core.spec import ProblemSpec, TaskType
from components.dumb_baseline_gate.importance import feature_importance
from components.dumb_baseline_gate.simple_model import SimpleModelComparison, compare_with_trees
from components.dumb_baseline_gate.slices import (
    GroupRates,
    SliceCheck,
    failures_message,
    group_rates,
    rate_gaps_message,
    slice_checks,
)
from components.scoring import metrics, parity
from components.scoring.metrics import prediction_arrays, task_arrays
from components.scoring.runtimes import TensorFlowRuntime

TRAIN_LABEL_ROWS = 200_000  # enough rows to estimate class priors or a mean


@dataclass
class BaselineComparison:
    metric: str
    description: str  # what the dumb baseline predicts
    model_metric: float
    dumb_metric: float
    improvement_interval: tuple[float, float]
    margin: float
    statistical_power: bool
    test_rows: int

    @property
    def message(self) -> str:
        low, high = self.improvement_interval
        interval = f"95% interval of the improvement [{low:.4f}, {high:.4f}]"
        if self.statistical_power:
            return (
                f"beats the dumb baseline ({self.description}): {self.metric} {self.model_metric:.4f} vs "
                f"{self.dumb_metric:.4f} on {self.test_rows} test rows, {interval} above {self.margin:g}"
            )
        return (
            f"no statistical power: the model's {self.metric} is {self.model_metric:.4f} and the dumb "
            f"baseline's ({self.description}) is {self.dumb_metric:.4f} on {self.test_rows} test rows; the "
            f"{interval} does not clear evaluation.baseline_margin = {self.margin:g}"
        )

    def to_json(self) -> dict:
        return {**asdict(self), "message": self.message}


def dumb_predictions(
    spec: ProblemSpec, train_labels: np.ndarray, rows: int, width: int
) -> tuple[np.ndarray, str]:
    """What the trivial predictor says for every test row, from the training labels alone."""
    if spec.task == TaskType.REGRESSION:
        if spec.metric.name == "mae":
            return np.full((rows, 1), np.median(train_labels[:, 0])), "the training median"
        return np.full((rows, 1), np.mean(train_labels[:, 0])), "the training mean"
    if spec.task == TaskType.MULTICLASS:
        counts = np.bincount(train_labels[:, 0].astype(int), minlength=width)[:width]
        return np.tile(counts / counts.sum(), (rows, 1)), "the class priors (the majority class)"
    priors = train_labels.mean(axis=0, keepdims=True)
    return np.tile(priors, (rows, 1)), "the class priors (the majority class)"


def compare(
    spec: ProblemSpec, labels: np.ndarray, predictions: np.ndarray, dumb: np.ndarray, description: str
):
    name, task, higher = spec.metric.name, spec.task.value, spec.metric.higher_is_better
    y, model, baseline = (
        task_arrays(spec, labels),
        prediction_arrays(spec, predictions),
        prediction_arrays(spec, dumb),
    )
    model_metric, dumb_metric, interval = metrics.paired_comparison(name, task, higher, y, model, baseline)
    margin = spec.evaluation.baseline_margin
    return BaselineComparison(
        metric=name,
        description=description,
        model_metric=model_metric,
        dumb_metric=dumb_metric,
        improvement_interval=interval,
        margin=margin,
        statistical_power=bool(interval[0] > margin),
        test_rows=len(y),
    )


def _text_safe(values: np.ndarray) -> np.ndarray:
    """Object arrays of text become fixed-width unicode, so the file loads without pickle."""
    return values.astype(str) if values.dtype == object else values


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        spec = problem_spec(exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        tft_output = tft.TFTransformOutput(artifact_utils.get_single_uri(input_dict["transform_graph"]))
        examples = input_dict["examples"]
        runtime = TensorFlowRuntime(path_utils.serving_model_path(model.uri))
        dtypes = runtime.input_dtypes()

        serialized = parity.read_serialized(parity.split_records(examples, parity.TEST_SPLIT))
        if not serialized:
            raise ValueError("the test split is empty: the model cannot be compared with the dumb baseline")
        inputs, parsed = parity.raw_inputs(serialized, tft_output, dtypes)
        labels = parity.labels(parsed, tft_output, spec)
        predictions = runtime.predict(inputs)
        train = parity.read_serialized(parity.split_records(examples, parity.TRAIN_SPLIT), TRAIN_LABEL_ROWS)
        train_inputs, train_parsed = parity.raw_inputs(train, tft_output, dtypes)
        train_labels = parity.labels(train_parsed, tft_output, spec)
        dumb, description = dumb_predictions(spec, train_labels, len(labels), predictions.shape[1])
        comparison = compare(spec, labels, predictions, dumb, description)
        simple = compare_with_trees(spec, train_inputs, train_labels, inputs, labels, predictions, serialized)
        logging.info("Simple model: %s", simple.message)

        evaluator_blessed = (
            artifact_utils.get_single_instance(input_dict["model_blessing"]).get_int_custom_property(
                constants.ARTIFACT_PROPERTY_BLESSED_KEY
            )
            == 1
        )
        slices = slice_checks(spec, parsed, labels, predictions)
        groups = group_rates(spec, parsed, labels, predictions)
        slice_failures = "; ".join(
            message
            for message in (failures_message(spec, slices), rate_gaps_message(spec, groups))
            if message
        )
        blessed = evaluator_blessed and comparison.statistical_power and not slice_failures
        logging.info("Dumb baseline: %s; blessed: %s", comparison.message, blessed)
        if slice_failures:
            logging.warning("Slices below their floor: %s", slice_failures)

        out = artifact_utils.get_single_instance(output_dict[TEST_PREDICTIONS_KEY])
        np.savez_compressed(
            Path(out.uri) / TEST_PREDICTIONS_FILE,
            labels=labels,
            predictions=predictions,
            dumb_predictions=dumb,
            **{f"feature/{name}": _text_safe(values[:, 0]) for name, values in inputs.items()},
        )
        try:
            importance = feature_importance(runtime, inputs, labels, _metric_scorer(spec))
            (Path(out.uri) / IMPORTANCE_FILE).write_text(json.dumps(importance, indent=1))
        except ValueError as error:  # the metric is undefined on these rows (one class only)
            logging.warning("Feature importance not computed: %s", error)
        write_blessing(
            artifact_utils.get_single_instance(output_dict[BASELINE_BLESSING_KEY]),
            model,
            comparison,
            blessed,
            evaluator_blessed,
            simple,
            slices,
            slice_failures,
            groups,
        )


def _metric_scorer(spec: ProblemSpec):
    """The spec's metric as a higher-is-better score of (labels, predictions)."""
    sign = 1.0 if spec.metric.higher_is_better else -1.0

    def score(labels: np.ndarray, predictions: np.ndarray) -> float:
        value = metrics.metric_value(
            spec.metric.name, spec.task.value, task_arrays(spec, labels), prediction_arrays(spec, predictions)
        )
        return sign * value

    return score


def write_blessing(
    blessing: types.Artifact,
    model: types.Artifact,
    comparison: BaselineComparison,
    blessed: bool,
    evaluator_blessed: bool,
    simple: SimpleModelComparison | None = None,
    slices: list[SliceCheck] = (),
    slice_failures: str = "",
    groups: list[GroupRates] = (),
) -> None:
    """A ModelBlessing like the Evaluator's (same properties and marker file), plus the comparisons and the
    gated slices (`slice_failures`: the ones below their floor, '' when none)."""
    folder = Path(blessing.uri)
    folder.mkdir(parents=True, exist_ok=True)
    record = {**comparison.to_json(), "evaluator_blessed": evaluator_blessed, "blessed": blessed}
    record["slices"] = [check.to_json() for check in slices]
    record["sensitive_groups"] = [asdict(group) for group in groups]
    record["slice_failures"] = slice_failures
    blessing.set_string_custom_property("slice_failures", slice_failures)
    if simple is not None:
        record["simple_model"] = simple.to_json()
        blessing.set_string_custom_property("simple_model_message", simple.message)
    (folder / POWER_FILE).write_text(json.dumps(record, indent=1))
    (folder / (constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME)).write_text("")
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(blessed))
    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    blessing.set_int_custom_property("statistical_power", int(comparison.statistical_power))
    blessing.set_float_custom_property("model_metric", comparison.model_metric)
    blessing.set_float_custom_property("dumb_metric", comparison.dumb_metric)
    blessing.set_string_custom_property("power_message", comparison.message)
