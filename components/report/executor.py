"""StakeholderReportGen executor: gathers the run's figures from its artifacts and renders the report."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_transform as tft
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.core import annotations, artifacts, evaluation
from components.core.artifacts import REPORT_DATA_FILE, REPORT_FILE, REPORT_KEY, problem_spec
from components.core.evaluation import read_evaluation, slice_metrics
from components.core.models_config import target_name
from components.core.spec import FeatureKind, ProblemSpec, TaskType
from components.modules.preprocessing_fn import vocabulary_name
from components.modules.signatures import RAW_DTYPES, raw_feature_kinds
from components.report.render import render_report, validation_gap_message
from components.scoring import metrics, parity
from components.scoring.metrics import prediction_arrays, task_arrays

LEAKAGE_ROWS = 20_000  # training rows sampled for the single-feature leakage check and the class balance
SLICE_VALUES = 12  # most frequent values shown per slicing feature


def _uri(input_dict: dict[str, list[types.Artifact]], key: str) -> str | None:
    artifacts = input_dict.get(key) or []
    return artifacts[0].uri if artifacts else None


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        spec = problem_spec(exec_properties)
        run_id = self._context.pipeline_run_id if self._context else ""
        data = ReportBuilder(spec, input_dict, run_id).build()
        data["annotations"] = annotated_spans(input_dict, exec_properties.get("monitoring_dir"))
        out = Path(artifact_utils.get_single_uri(output_dict[REPORT_KEY]))
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT_DATA_FILE).write_text(json.dumps(data, indent=1, default=_plain))
        (out / REPORT_FILE).write_text(render_report(data), encoding="utf-8")
        logging.info("Stakeholder report: %s", out / REPORT_FILE)


def annotated_spans(input_dict: dict[str, list[types.Artifact]], monitoring_dir: str | None) -> list[dict]:
    """The annotation records of the spans in the training window, each with its one-line summary."""
    if not monitoring_dir:
        return []
    spans = [_span(artifact) for artifact in input_dict.get("examples", [])]
    records = annotations.read_records(monitoring_dir, spans)
    return [{**record, "summary": annotations.describe(record)} for record in records]


def _span(artifact: types.Artifact) -> int:
    """An Examples artifact's span: ExampleGen records it as a custom property."""
    if artifact.has_custom_property("span"):
        value = artifact.get_custom_property("span")
        return int(value) if value not in (None, "") else 0
    return int(artifact.span) if artifact.has_property("span") else 0


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class ReportBuilder:
    """Builds the report's data dict (see components/report/render.py for its layout)."""

    def __init__(self, spec: ProblemSpec, input_dict: dict[str, list[types.Artifact]], run_id: str):
        self.spec, self.inputs, self.run_id = spec, input_dict, run_id
        self.task = spec.task.value
        saved = artifacts.read_test_predictions(_uri(input_dict, artifacts.TEST_PREDICTIONS_KEY))
        self.labels = task_arrays(spec, saved["labels"])
        self.predictions = prediction_arrays(spec, saved["predictions"])
        self.test_features = {k.split("/", 1)[1]: saved[k] for k in saved if k.startswith("feature/")}
        self.power = artifacts.read_power(_uri(input_dict, "blessing"))

    def build(self) -> dict:
        spec = self.spec
        return {
            "title": f"{spec.name}: model report",
            "spec_name": spec.name,
            "task": self.task,
            "label": spec.label_columns,
            "description": spec.description,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "run_id": self.run_id,
            "metric": {
                "name": spec.metric.name,
                "higher_is_better": spec.metric.higher_is_better,
                "threshold": spec.metric.threshold,
            },
            "verdict": self.verdict(),
            "data": self.data_section(),
            "baseline": {
                "description": self.power["description"],
                "dumb_metric": self.power["dumb_metric"],
                "model_metric": self.power["model_metric"],
                "improvement_interval": self.power["improvement_interval"],
                "margin": self.power["margin"],
                "statistical_power": self.power["statistical_power"],
                "message": self.power["message"],
                "simple_model": self.power.get("simple_model"),
            },
            "test_metrics": self.test_metrics(),
            "validation_vs_test": self.validation_vs_test(),
            "confusion_matrix": self.confusion(),
            "thresholds": (
                metrics.threshold_table(self.labels, self.predictions)
                if spec.task == TaskType.BINARY
                else None
            ),
            "failures": self.failures(),
            "importance": artifacts.read_importance(_uri(self.inputs, artifacts.TEST_PREDICTIONS_KEY)),
            "slices": self.slices(),
            "learning_curves": self.learning_curves(),
            "tuning": self.tuning(),
            "targets": self.targets(),
            "parity": self.parity(),
            "residuals": self.residuals(),
        }

    def verdict(self) -> dict:
        _, failures = read_evaluation(_uri(self.inputs, "evaluation"))
        reasons = [f"the Evaluator: {failure}" for failure in failures]
        if not self.power["statistical_power"]:
            reasons.append(self.power["message"])
        return {"blessed": bool(self.power["blessed"]), "reasons": reasons}

    # --- the data -------------------------------------------------------------------------------
    def data_section(self) -> dict:
        statistics = _split_statistics(_uri(self.inputs, "statistics"))
        train_stats = statistics.get("train")
        features, leakage, balance, summary = [], [], None, None
        kinds = self._feature_kinds()
        if train_stats is not None:
            sizes = self._vocabulary_sizes(kinds)
            features = [
                _feature_row(name, kind, train_stats, sizes.get(name)) for name, kind in kinds.items()
            ]
        values, train_labels = self._training_sample(kinds)
        if len(train_labels):
            leakage = metrics.leakage_warnings(self.task, values, task_arrays(self.spec, train_labels))
            balance, summary = self._label_balance(train_labels)
        for warning in leakage:
            logging.warning("Target leakage: %s", warning["message"])
        return {
            "rows": {split: int(stats.num_examples) for split, stats in statistics.items()},
            "features": features,
            "label_balance": balance,
            "label_summary": summary,
            "leakage": leakage,
            "unused_columns": self.spec.unused_columns(list(train_stats_columns(train_stats))),
            "left_out_columns": self._left_out(),
        }

    def _left_out(self) -> dict[str, str]:
        uri = _uri(self.inputs, "schema")
        return artifacts.read_left_out(uri) if uri else {}

    def _feature_kinds(self) -> dict[str, FeatureKind]:
        return raw_feature_kinds(self.spec, self._tft_output())

    def _vocabulary_sizes(self, kinds: dict[str, FeatureKind]) -> dict[str, int]:
        """How many distinct values TF Transform found for each categorical feature in the train split:
        TFDV counts distinct values of text columns only, not of integer codes used as categories."""
        tft_output, sizes = self._tft_output(), {}
        for name, kind in kinds.items():
            if kind == FeatureKind.CATEGORICAL:
                try:
                    sizes[name] = int(tft_output.vocabulary_size_by_name(vocabulary_name(name)))
                except (ValueError, OSError):
                    logging.warning("No vocabulary found for the categorical feature %s", name)
        return sizes

    def _tft_output(self) -> tft.TFTransformOutput:
        return tft.TFTransformOutput(_uri(self.inputs, "transform_graph"))

    def _training_sample(self, kinds: dict[str, FeatureKind]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        tft_output = self._tft_output()
        dtypes = {name: RAW_DTYPES[kind] for name, kind in kinds.items()}
        serialized = parity.read_serialized(
            parity.split_records(self.inputs["examples"], parity.TRAIN_SPLIT), LEAKAGE_ROWS
        )
        if not serialized:
            return {}, np.zeros((0, 1))
        inputs, parsed = parity.raw_inputs(serialized, tft_output, dtypes)
        values = {
            name: (column[:, 0].astype(str) if column.dtype == object else column[:, 0])
            for name, column in inputs.items()
        }
        return values, parity.labels(parsed, tft_output, self.spec)

    def _label_balance(self, train_labels: np.ndarray) -> tuple[list[dict] | None, dict | None]:
        if self.spec.task == TaskType.REGRESSION:
            column = train_labels[:, 0]
            summary = {"mean": column.mean(), "std": column.std(), "min": column.min(), "max": column.max()}
            return None, {k: float(v) for k, v in summary.items()}
        rows = len(train_labels)
        balance = []
        if self.spec.task == TaskType.MULTILABEL:
            for index, label in enumerate(self.spec.label_columns):
                positive = int(train_labels[:, index].sum())
                balance.append({"label": label, "value": "1", "count": positive, "fraction": positive / rows})
            return balance, None
        values, counts = np.unique(train_labels[:, 0].astype(int), return_counts=True)
        label = self.spec.label_columns[0]
        for value, count in zip(values, counts, strict=True):
            balance.append(
                {"label": label, "value": str(value), "count": int(count), "fraction": count / rows}
            )
        return balance, None

    # --- the model on the test split ------------------------------------------------------------
    def test_metrics(self) -> list[dict]:
        rows = []
        for name in dict.fromkeys([self.spec.metric.name, *evaluation.DEFAULT_METRICS[self.spec.task]]):
            try:
                value = metrics.metric_value(name, self.task, self.labels, self.predictions)
                interval = metrics.bootstrap_interval(name, self.task, self.labels, self.predictions)
            except ValueError as error:
                logging.warning("Test metric %s not computed: %s", name, error)
                continue
            rows.append({"name": name, "value": value, "interval": list(interval)})
        return rows

    def validation_vs_test(self) -> dict | None:
        """Test against validation: flagged when test is worse by more than `evaluation.test_gap` (an
        absolute difference when higher is better, a fraction of the validation figure otherwise)."""
        validation = self._validation_metric()
        test = self.power["model_metric"]
        metric = self.spec.metric
        gap = self.spec.evaluation.test_gap
        if validation is None:
            flagged = False
        elif metric.higher_is_better:
            flagged = validation - test > gap
        else:
            flagged = test > validation * (1 + gap)
        message = validation_gap_message(metric.name, validation, test, metric.higher_is_better, gap, flagged)
        if flagged:
            logging.warning(message)
        return {"validation": validation, "test": test, "flagged": bool(flagged), "message": message}

    def _validation_metric(self) -> float | None:
        protocol = self._protocol()
        if protocol is not None and protocol["trials"]:
            scores = [float(np.mean(r["fold_scores"])) for r in protocol["trials"].values()]
            return max(scores) if self.spec.metric.higher_is_better else min(scores)
        history = self._history()
        key = f"val_{self.spec.metric.name}"
        if key in history and history.get("val_loss"):
            return float(history[key][int(np.argmin(history["val_loss"]))])
        return None

    def confusion(self) -> dict | None:
        if self.spec.task == TaskType.REGRESSION:
            return None
        names = self.class_names()
        return metrics.confusion_matrix(self.task, self.labels, self.predictions, class_names=names)

    def class_names(self) -> list[str] | None:
        """The names the model gives its outputs (saved with it); for older models, what the schema says."""
        model_uri = _uri(self.inputs, "model")
        names = artifacts.read_class_names(path_utils.serving_model_path(model_uri)) if model_uri else None
        if names is not None:
            return names
        if self.spec.task == TaskType.MULTILABEL:
            return self.spec.label_columns
        schema = _uri(self.inputs, "schema")
        if self.spec.task == TaskType.BINARY and schema:
            return artifacts.binary_class_names(schema, self.spec)
        return None

    def failures(self) -> list[dict]:
        found = metrics.confident_failures(self.task, self.labels, self.predictions, k=10)
        order = [name for name in self._feature_kinds() if name in self.test_features]  # the spec's order
        order += [name for name in self.test_features if name not in order]
        for failure in found:
            failure["row"] = {name: _plain(self.test_features[name][failure["index"]]) for name in order}
        return found

    def residuals(self) -> dict | None:
        if self.spec.task != TaskType.REGRESSION:
            return None
        return {"labels": self.labels.tolist(), "predictions": self.predictions.tolist()}

    def slices(self) -> list[dict] | None:
        if not self.spec.evaluation.sliced_features:
            return None
        import tensorflow_model_analysis as tfma

        result = tfma.load_eval_result(_uri(self.inputs, "evaluation"))
        found = []
        for slice_key, by_output in result.slicing_metrics:
            if len(slice_key) != 1:
                continue
            feature, value = slice_key[0]
            values = slice_metrics(by_output)
            count = int(values.pop("example_count", 0))
            found.append({"feature": feature, "value": _text(value), "count": count, "metrics": values})
        kept = []
        for feature in self.spec.evaluation.sliced_features:
            rows = sorted((s for s in found if s["feature"] == feature), key=lambda s: -s["count"])
            kept += rows[:SLICE_VALUES]
        return kept

    # --- training, tuning and deployment --------------------------------------------------------
    def _history(self) -> dict:
        return artifacts.read_history(_uri(self.inputs, "model_run"))

    def _protocol(self) -> dict | None:
        uri = _uri(self.inputs, "tuner_results")
        return artifacts.read_protocol(uri) if uri else None

    def learning_curves(self) -> dict | None:
        protocol, history = self._protocol(), self._history()
        sweep = protocol["capacity_sweep"] if protocol else []
        final = {
            "loss": history["loss"],
            **({"val_loss": history["val_loss"]} if "val_loss" in history else {}),
        }
        if not sweep and not history:
            return None
        return {"capacity_sweep": sweep, "final": final if history else None}

    def tuning(self) -> dict | None:
        protocol = self._protocol()
        if protocol is None:
            return None
        results = artifacts.read_tuner_results(_uri(self.inputs, "tuner_results"))
        trials = [
            {
                "trial_id": row["trial_id"],
                "score": row["score"],
                "hyperparameters": {k: v for k, v in row.items() if k not in ("trial_id", "score")},
            }
            for row in results
        ]
        for trial in trials:
            record = protocol["trials"].get(trial["trial_id"], {})
            trial["hyperparameters"]["hidden_units"] = record.get("hidden_units")
        return {
            "protocol": protocol["protocol"],
            "objective": protocol["objective"],
            "trials": trials,
            "best": trials[0]["hyperparameters"] if trials else {},
        }

    def _targets_report(self) -> dict:
        uri = _uri(self.inputs, artifacts.DEVICE_MODELS_KEY)
        return artifacts.read_targets(uri) if uri else {"exported": False}

    def targets(self) -> list[dict] | None:
        report = self._targets_report()
        if not report.get("exported"):
            return None
        return [
            {
                "name": target_name(target),
                "size_bytes": target["size_bytes"],
                "metric": target["metric"],
                "max_abs_diff": target["max_abs_diff"],
                "max_abs_diff_flagged": bool(target.get("max_abs_diff_flagged", False)),
                "reference_mae": target.get("reference_mae"),
                "p50_ms": target["latency_ms_p50"],
                "pushed": target["passed"],
                "reason": target["reason"],
            }
            for target in report["targets"]
        ]

    def parity(self) -> dict | None:
        """What the parity gate allowed: the tolerance, how it applies, the loss in the metric's units."""
        report = self._targets_report()
        if not report.get("exported"):
            return None
        return {
            "tolerance": report.get("tolerance"),
            "tolerance_kind": report.get("tolerance_kind"),
            "allowed_loss": report.get("allowed_loss"),
            "reference_mae": report.get("reference_mae"),
        }


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _split_statistics(uri: str | None) -> dict:
    """Each split's DatasetFeatureStatistics from a StatisticsGen output."""
    import tensorflow_data_validation as tfdv

    found = {}
    for split in ("train", "eval", "test"):
        path = Path(uri or "", f"Split-{split}", "FeatureStats.pb")
        if path.exists():
            found[split] = tfdv.load_stats_binary(str(path)).datasets[0]
    return found


def train_stats_columns(stats) -> list[str]:
    """The column names of one split's TFDV statistics (none when the split has no statistics)."""
    return [feature.path.step[0] for feature in stats.features if feature.path.step] if stats else []


def _feature_row(name: str, kind: FeatureKind, statistics, vocabulary_size: int | None = None) -> dict:
    """A feature's missing share and distinct values in the train split's statistics.

    A CSV's empty cell is a feature present with no value, which TFDV does not count in `num_missing`:
    for a single-valued column it is the gap between the rows that have the feature and its values.
    Distinct values: TFDV's count for text, the vocabulary's size for a categorical feature of numbers.
    """
    for feature in statistics.features:
        if feature.path.step and feature.path.step[-1] == name:
            is_text = feature.HasField("string_stats")
            common = (feature.string_stats if is_text else feature.num_stats).common_stats
            empty = common.num_non_missing - common.tot_num_values if common.max_num_values <= 1 else 0
            missing = common.num_missing + max(0, int(empty))
            total = common.num_missing + common.num_non_missing
            distinct = int(feature.string_stats.unique) if is_text else vocabulary_size
            return {
                "name": name,
                "kind": kind.value,
                "missing_fraction": missing / total if total else 0.0,
                "distinct": distinct if kind == FeatureKind.CATEGORICAL or is_text else None,
            }
    return {"name": name, "kind": kind.value, "missing_fraction": None, "distinct": vocabulary_size}
