"""ModelExporter component: converts a blessed model for devices and browsers and checks each result."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.core.artifacts import DEVICE_MODELS_KEY, SPEC_PARAMETERS, DeviceModels
from components.model_exporter.executor import SERVING_DIR_KEY, Executor


class ModelExporterSpec(ComponentSpec):
    PARAMETERS = {**SPEC_PARAMETERS, SERVING_DIR_KEY: ExecutionParameter(type=str, optional=True)}
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {DEVICE_MODELS_KEY: ChannelParameter(type=DeviceModels)}


class ModelExporter(base_component.BaseComponent):
    """Builds the spec's TFLite and TF.js targets from the `serving_raw` signature of a blessed model.

    Each target (and the SavedModel itself) is run on the test split in its own runtime: TensorFlow,
    the TFLite interpreter with builtin ops only, TF.js in Node. A target whose metric is worse than the
    SavedModel's by more than `deployment.parity.tolerance` (absolute for a metric in [0, 1], relative for
    mse / mae: `parity.allowed_loss`) is marked not to be pushed, with the reason; one whose prediction on
    some test row is further from the SavedModel's than the SavedModel's mean absolute error is flagged.
    The compute gates (`gates`) refuse a target over `deployment.max_latency_ms` or `max_size_kb`, or
    slower than `deployment.max_slowdown` times the same target in the version in service (read from
    `serving_dir`'s manifest); a refused SavedModel refuses the whole version.
    A model that is not blessed (the DumbBaselineGate's blessing) exports nothing. `code_version`
    (pipelines.workflow.training.code_version) is not read by the executor: it is part of the cache key, so a
    change to the conversion code re-runs it.
    """

    SPEC_CLASS = ModelExporterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        problem_spec: str,
        code_version: str,
        serving_dir: str | None = None,
    ):
        spec = ModelExporterSpec(
            model=model,
            model_blessing=model_blessing,
            examples=examples,
            transform_graph=transform_graph,
            problem_spec=problem_spec,
            code_version=code_version,
            serving_dir=serving_dir,
            device_models=types.Channel(type=DeviceModels),
        )
        super().__init__(spec=spec)
