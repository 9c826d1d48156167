"""DumbBaselineGate component: the Evaluator's blessing, and the model beating a dumb baseline."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec

from components.core.artifacts import (
    BASELINE_BLESSING_KEY,
    SPEC_PARAMETERS,
    TEST_PREDICTIONS_KEY,
    TestPredictions,
)
from components.dumb_baseline_gate.executor import Executor


class DumbBaselineGateSpec(ComponentSpec):
    PARAMETERS = SPEC_PARAMETERS
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }
    OUTPUTS = {
        BASELINE_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        TEST_PREDICTIONS_KEY: ChannelParameter(type=TestPredictions),
    }


class DumbBaselineGate(base_component.BaseComponent):
    """Re-blesses the Evaluator's verdict only when the model also beats the dumb baseline.

    The dumb baseline predicts what the training split alone suggests: the class priors (binary,
    multiclass, multilabel; the majority class where a decision is needed), the training mean (mse) or
    median (mae). Both are scored on the test split; the model is blessed when the Evaluator blessed it
    and the lower end of a 95% paired-bootstrap interval of its improvement over the baseline is above
    `evaluation.baseline_margin`. Otherwise the run has "no statistical power", with both numbers.
    """

    SPEC_CLASS = DumbBaselineGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        problem_spec: str,
        code_version: str,
    ):
        super().__init__(
            spec=DumbBaselineGateSpec(
                examples=examples,
                transform_graph=transform_graph,
                model=model,
                model_blessing=model_blessing,
                problem_spec=problem_spec,
                code_version=code_version,
                baseline_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
                test_predictions=types.Channel(type=TestPredictions),
            )
        )
