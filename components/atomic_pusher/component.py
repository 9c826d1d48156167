"""AtomicPusher component: pushes a blessed model and its device targets as one numbered version."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.atomic_pusher.executor import Executor
from components.core.artifacts import DEVICE_MODELS_KEY, DeviceModels


class AtomicPusherSpec(ComponentSpec):
    PARAMETERS = {
        standard_component_specs.PUSH_DESTINATION_KEY: ExecutionParameter(type=pusher_pb2.PushDestination),
        standard_component_specs.CUSTOM_CONFIG_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        standard_component_specs.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        standard_component_specs.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        DEVICE_MODELS_KEY: ChannelParameter(type=DeviceModels, optional=True),
    }
    OUTPUTS = {
        standard_component_specs.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
    }


class AtomicPusher(base_component.BaseComponent):
    """Pushes a blessed model to `<base>/<version>/` for TF Serving, with its device targets, atomically.

    TFX's own Pusher copies straight into the version folder, and TF Serving can load a version while
    it is half-copied. This one fills a hidden temporary folder on the same filesystem (the SavedModel,
    the TFLite and TF.js targets that passed the parity gate, and `manifest.json`) and renames it into
    place, so a version either is complete or does not exist. Then `models.config` and `current.json`
    make it the version in service for every target. When the ModelExporter refused the SavedModel
    itself (a compute gate), nothing is pushed and the version in service stays.
    """

    SPEC_CLASS = AtomicPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        push_destination: pusher_pb2.PushDestination,
        device_models: types.BaseChannel | None = None,
    ):
        spec = AtomicPusherSpec(
            model=model,
            model_blessing=model_blessing,
            device_models=device_models,
            push_destination=push_destination,
            custom_config=None,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec)
