"""ModelExporter executor: convert, run every target on the test split, record what may be pushed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_transform as tft
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.core.artifacts import (
    DEVICE_MODELS_KEY,
    EXPORTED_PROPERTY,
    PAGE_FILE,
    TARGETS_FILE,
    custom_int,
    problem_spec,
    read_class_names,
)
from components.core.spec import ProblemSpec
from components.model_exporter import converters, gates, page, targets, workers
from components.model_exporter.targets import TFJS, TFLITE
from components.modules.signatures import model_variables
from components.scoring import parity, runtimes
from components.scoring.parity import TargetReport

# Execution property: the model's serving folder (`<serving root>/<model>`), where the version in service
# is read for `deployment.max_slowdown`.
SERVING_DIR_KEY = "serving_dir"
RAW_ONLY_FOLDER = "raw_only_saved_model"  # in the executor's temporary folder
RUNTIMES = {TFLITE: runtimes.TFLiteRuntime.name, TFJS: runtimes.TfjsNodeRuntime.name}


def target_path(family: str, variant: str) -> str:
    """Where a device target sits, relative to the exporter's output (and to the version once pushed)."""
    return f"tflite/{variant}.tflite" if family == TFLITE else f"tfjs/{variant}"


def is_blessed(blessings: list[types.Artifact]) -> bool:
    blessing = artifact_utils.get_single_instance(blessings)
    return blessing.get_int_custom_property("blessed") == 1


def weight_sparsity(saved_model) -> float:
    """The fraction of exact zeros among the dense kernels and embeddings (what pruning sets)."""
    weights = [
        v.numpy() for v in model_variables(saved_model) if "kernel" in v.name or "embeddings" in v.name
    ]
    total = sum(w.size for w in weights)
    return float(sum(int(np.count_nonzero(w == 0)) for w in weights) / total) if total else 0.0


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        output = artifact_utils.get_single_instance(output_dict[DEVICE_MODELS_KEY])
        out_dir = Path(output.uri)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not is_blessed(input_dict["model_blessing"]):
            logging.info("The model is not blessed: nothing is exported")
            output.set_int_custom_property(EXPORTED_PROPERTY, 0)
            (out_dir / TARGETS_FILE).write_text(
                json.dumps(
                    {"exported": False, "reason": "the model is not blessed (Evaluator or dumb baseline)"},
                    indent=1,
                )
            )
            return
        spec = problem_spec(exec_properties)
        model_dir = path_utils.serving_model_path(artifact_utils.get_single_uri(input_dict["model"]))
        tft_output = tft.TFTransformOutput(artifact_utils.get_single_uri(input_dict["transform_graph"]))
        examples = input_dict["examples"]
        serving_dir = exec_properties.get(SERVING_DIR_KEY)
        served = gates.served_latencies(Path(serving_dir) if serving_dir else None)
        exporter = TargetExporter(spec, model_dir, tft_output, examples, out_dir, self._get_tmp_dir(), served)
        report = exporter.run()
        report["spans"] = sorted({custom_int(e, "span") for e in examples})
        report["model_uri"] = artifact_utils.get_single_uri(input_dict["model"])
        (out_dir / TARGETS_FILE).write_text(json.dumps(report, indent=1))
        output.set_int_custom_property(EXPORTED_PROPERTY, 1)


class TargetExporter:
    """Builds every target the spec asks for under `out_dir` and checks each on the test split.

    The conversions and their runs on the test rows happen in worker processes, one lane per target
    family (workers.py: the TFLite targets in one, the TF.js ones in the other, at the same time); this
    process prepares what they need once (the test rows, the calibration rows, the raw-only SavedModel
    both families convert) while the workers start, judges what they send back, and times the SavedModel
    once the conversions are done, so that they do not weigh on its latency.
    """

    def __init__(
        self,
        spec: ProblemSpec,
        model_dir: str,
        tft_output: tft.TFTransformOutput,
        examples: list[types.Artifact],
        out_dir: Path,
        tmp_dir: str,
        served: gates.ServedLatencies | None = None,
    ):
        self.spec, self.model_dir, self.tft_output = spec, model_dir, tft_output
        self.examples, self.out_dir, self.tmp_dir = examples, out_dir, Path(tmp_dir)
        self.served = served or gates.ServedLatencies()
        self.savedmodel: TargetReport | None = None
        self.calls = spec.deployment.parity.latency_calls

    def run(self) -> dict:
        families = {TFLITE: self.spec.deployment.tflite, TFJS: self.spec.deployment.tfjs}
        families = {family: variants for family, variants in families.items() if variants}
        with workers.Lanes({f: targets.WORKER_MODULES[f] for f in families}) as lanes:
            parsed = self._prepare_jobs()  # while the workers import TensorFlow
            jobs = [self._job(family, v) for family, variants in families.items() for v in variants]
            for job in jobs:
                if job.variant != "int8":
                    lanes.submit(job.target, job)
            for job in jobs:
                if job.variant == "int8":  # last in its lane: the others run while its rows are read
                    lanes.submit(job.target, replace(job, calibration=self._calibration()))
            self._score_reference(parsed)
            page_metadata = self._page_metadata() if TFJS in families else None
            outcomes = lanes.results()
            self.savedmodel = self._savedmodel()  # the conversions done; the workers exiting meanwhile
        reports = [self.savedmodel, *(self._report(job, outcomes[job.name]) for job in jobs)]
        if page_metadata is not None:
            self._write_page(page_metadata, [r for r in reports if r.target == TFJS])
        return self._summary(reports)

    def _prepare_jobs(self) -> dict:
        """What the workers need, made once: the raw-only SavedModel (written from the model loaded here,
        the reference) and the test rows. Returns the parsed test examples."""
        self.reference = runtimes.TensorFlowRuntime(self.model_dir)
        self.input_dtypes = self.reference.input_dtypes()
        self.raw_only = self.tmp_dir / RAW_ONLY_FOLDER
        converters.write_raw_only_saved_model(self.reference.saved_model, str(self.raw_only))
        self.serialized = parity.read_serialized(parity.split_records(self.examples, parity.TEST_SPLIT))
        if not self.serialized:
            raise ValueError("the test split is empty: no row to check the deployment targets on")
        self.inputs, parsed = parity.raw_inputs(self.serialized, self.tft_output, self.input_dtypes)
        return parsed

    def _score_reference(self, parsed: dict) -> None:
        """The labels and the SavedModel's predictions and figures, which every target is judged against:
        its raw-feature signature's, once they agree with what `serving_default` serves."""
        self.labels = parity.labels(parsed, self.tft_output, self.spec)
        self.reference_predictions = self.reference.predict(self.inputs)
        self.reference_metric = parity.metric_value(self.spec, self.labels, self.reference_predictions)
        self.reference_mae = parity.mean_abs_error(self.spec, self.labels, self.reference_predictions)
        self.allowed_loss = parity.allowed_loss(self.spec, self.reference_metric)
        self.served_predictions = self.reference.predict_examples(self.serialized)
        self.signature_problem = parity.signature_disagreement(
            self.reference_predictions, self.served_predictions
        )
        if self.signature_problem:
            logging.warning("No device target is pushed: %s", self.signature_problem)

    def _job(self, family: str, variant: str) -> targets.TargetJob:
        return targets.TargetJob(
            target=family,
            variant=variant,
            source=str(self.raw_only),
            destination=self.out_dir / target_path(family, variant),
            work_dir=self.tmp_dir,
            inputs=self.inputs,
            latency_calls=self.calls,
        )

    def _calibration(self) -> runtimes.Inputs:
        return parity.calibration_inputs(self.examples, self.tft_output, self.input_dtypes)

    def _summary(self, reports: list[TargetReport]) -> dict:
        pruning = self.spec.deployment.pruning
        return {
            "exported": True,
            "task": self.spec.task.value,
            "metric": self.spec.metric.name,
            "higher_is_better": self.spec.metric.higher_is_better,
            "tolerance": self.spec.deployment.parity.tolerance,
            "tolerance_kind": parity.tolerance_kind(self.spec),
            "allowed_loss": self.allowed_loss,
            "reference_mae": self.reference_mae,
            "test_rows": len(self.labels),
            "latency_calls": self.calls,
            "sparsity": {
                "target": pruning.target_sparsity if pruning else None,
                "reached": weight_sparsity(self.reference.saved_model),
            },
            "targets": [r.to_json() for r in reports],
        }

    def _savedmodel(self) -> TargetReport:
        timings = self.reference.latency_ms(self.inputs, self.calls)
        logging.info(
            "SavedModel: %s %.4f on %d test rows",
            self.spec.metric.name,
            self.reference_metric,
            len(self.labels),
        )
        report = TargetReport(
            target="serving",
            variant="savedmodel",
            path="",
            runtime=self.reference.name,
            size_bytes=converters.size_bytes(Path(self.model_dir)),
            metric=parity.metric_value(self.spec, self.labels, self.served_predictions),
            max_abs_diff=parity.max_row_difference(self.served_predictions, self.reference_predictions),
            latency_ms_p50=parity.percentile(timings, 50),
            latency_ms_p99=parity.percentile(timings, 99),
            passed=True,
            allowed_loss=self.allowed_loss,
            reference_mae=self.reference_mae,
        )
        gates.check(report, self.spec.deployment, self.served)
        if not report.passed:
            logging.warning(
                "serving (the SavedModel) fails a compute gate, nothing is pushed: %s", report.reason
            )
        return report

    def _report(self, job: targets.TargetJob, outcome: targets.TargetOutcome) -> TargetReport:
        """A target's figures from what its worker sent back; a target that failed is recorded, not raised."""
        report = TargetReport(
            job.target, job.variant, target_path(job.target, job.variant), RUNTIMES[job.target]
        )
        if outcome.reason:
            report.passed, report.reason = False, outcome.reason
        else:
            self._judge(report, outcome.predictions, outcome.timings)
        report.size_bytes = converters.size_bytes(job.destination) if job.destination.exists() else 0
        gates.check(report, self.spec.deployment, self.served, self.savedmodel)
        verdict = "passes" if report.passed else f"NOT pushed: {report.reason}"
        logging.info("%s: %s (%.1fs)", report.name, verdict, outcome.seconds)
        return report

    def _page_metadata(self) -> dict:
        return page.build_page(
            self.spec, self.tft_output, self.examples, self.input_dtypes, read_class_names(self.model_dir)
        )

    def _write_page(self, metadata: dict, reports: list[TargetReport]) -> None:
        """`page.json` into each TF.js model's folder (after its size is measured: it is the page's, not
        the model's)."""
        for report in reports:
            folder = self.out_dir / report.path
            if folder.is_dir():
                (folder / PAGE_FILE).write_text(json.dumps(metadata, indent=1))

    def _judge(self, report: TargetReport, predictions: np.ndarray, timings: list[float]) -> None:
        predictions = predictions.reshape(self.reference_predictions.shape)
        report.metric = parity.metric_value(self.spec, self.labels, predictions)
        report.max_abs_diff = parity.max_row_difference(predictions, self.reference_predictions)
        report.latency_ms_p50 = parity.percentile(timings, 50)
        report.latency_ms_p99 = parity.percentile(timings, 99)
        report.passed, report.reason = parity.passes(self.spec, self.reference_metric, report.metric)
        report.allowed_loss, report.reference_mae = self.allowed_loss, self.reference_mae
        report.max_abs_diff_flagged = parity.row_difference_flagged(report.max_abs_diff, self.reference_mae)
        if self.signature_problem:
            report.passed, report.reason = False, self.signature_problem
        if report.max_abs_diff_flagged:
            logging.warning(
                "%s: one test row's prediction is %.4g from the SavedModel's, more than the SavedModel's "
                "mean absolute error (%.4g)",
                report.name,
                report.max_abs_diff,
                self.reference_mae,
            )
