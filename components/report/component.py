"""StakeholderReportGen component: what the run found, in one HTML file a product owner can read."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.core.artifacts import (
    DEVICE_MODELS_KEY,
    REPORT_KEY,
    SPEC_PARAMETERS,
    TEST_PREDICTIONS_KEY,
    DeviceModels,
    StakeholderReport,
    TestPredictions,
)
from components.report.executor import Executor


class StakeholderReportGenSpec(ComponentSpec):
    PARAMETERS = {
        **SPEC_PARAMETERS,
        # Where `pipelines land --annotations` records annotated spans (the monitoring folder).
        "monitoring_dir": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics),
        "schema": ChannelParameter(type=standard_artifacts.Schema, optional=True),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
        "model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        TEST_PREDICTIONS_KEY: ChannelParameter(type=TestPredictions),
        DEVICE_MODELS_KEY: ChannelParameter(type=DeviceModels),
        "tuner_results": ChannelParameter(type=standard_artifacts.TunerResults, optional=True),
    }
    OUTPUTS = {REPORT_KEY: ChannelParameter(type=StakeholderReport)}


class StakeholderReportGen(base_component.BaseComponent):
    """Writes the run's stakeholder report: the task and the data (rows, class balance, missing values,
    target-leakage warnings), the dumb baseline against the model, test metrics with 95% bootstrap
    intervals, confusion matrix, error rates across decision thresholds, the most confident failures,
    per-slice metrics (the Evaluator's slices), learning curves, tuning trials, each deployment
    target's size and parity, and the annotated spans the training window holds (with the agreement
    of the audited model and the annotators). It is written whether or not the model was blessed: it
    says why."""

    SPEC_CLASS = StakeholderReportGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        model_run: types.BaseChannel,
        evaluation: types.BaseChannel,
        blessing: types.BaseChannel,
        test_predictions: types.BaseChannel,
        device_models: types.BaseChannel,
        problem_spec: str,
        code_version: str,
        tuner_results: types.BaseChannel | None = None,
        schema: types.BaseChannel | None = None,
        model: types.BaseChannel | None = None,
        monitoring_dir: str | None = None,
    ):
        super().__init__(
            spec=StakeholderReportGenSpec(
                monitoring_dir=monitoring_dir,
                statistics=statistics,
                schema=schema,
                examples=examples,
                transform_graph=transform_graph,
                model=model,
                model_run=model_run,
                evaluation=evaluation,
                blessing=blessing,
                test_predictions=test_predictions,
                device_models=device_models,
                tuner_results=tuner_results,
                problem_spec=problem_spec,
                code_version=code_version,
                report=types.Channel(type=StakeholderReport),
            )
        )
