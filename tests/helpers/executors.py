"""Running one of our executors on existing artifacts, without a pipeline: the ModelExporter and the
AtomicPusher again on a finished run's model, with another spec or into another serving folder."""

from __future__ import annotations

import json
from pathlib import Path

from tfx import types
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.atomic_pusher.executor import Executor as PusherExecutor
from components.core.artifacts import DEVICE_MODELS_KEY, PROBLEM_SPEC_KEY, DeviceModels, read_targets
from components.model_exporter.executor import SERVING_DIR_KEY
from components.model_exporter.executor import Executor as ExporterExecutor

SPLITS = ["train", "eval", "test"]


def artifact(kind: type[types.Artifact], uri: str | Path, **custom_ints: int) -> types.Artifact:
    made = kind()
    made.uri = str(uri)
    for name, value in custom_ints.items():
        made.set_int_custom_property(name, value)
    return made


def blessing(uri: str | Path) -> types.Artifact:
    return artifact(standard_artifacts.ModelBlessing, uri, blessed=1)


def examples(uri: str | Path, span: int = 0) -> types.Artifact:
    made = artifact(standard_artifacts.Examples, uri, span=span)
    made.split_names = artifact_utils.encode_split_names(SPLITS)
    return made


def export(run_outputs: dict, spec, out_dir: Path, serving_dir: Path | None) -> dict:
    """The ModelExporter on a run's model, examples and transform graph (`RunSummary.outputs`) with
    `spec`, into `out_dir`; returns its `targets.json`."""
    inputs = {
        "model": [artifact(standard_artifacts.Model, run_outputs["Trainer"]["model"][0])],
        "model_blessing": [blessing(run_outputs["DumbBaselineGate"]["baseline_blessing"][0])],
        "examples": [examples(run_outputs["CsvExampleGen"]["examples"][0])],
        "transform_graph": [
            artifact(standard_artifacts.TransformGraph, run_outputs["Transform"]["transform_graph"][0])
        ],
    }
    outputs = {DEVICE_MODELS_KEY: [artifact(DeviceModels, out_dir)]}
    properties = {PROBLEM_SPEC_KEY: json.dumps(spec.to_config())}
    if serving_dir is not None:
        properties[SERVING_DIR_KEY] = str(serving_dir)
    context = ExporterExecutor.Context(tmp_dir=str(out_dir.parent / f"{out_dir.name}-tmp"), unique_id="0")
    ExporterExecutor(context).Do(inputs, outputs, properties)
    return read_targets(str(out_dir))


def push(model_uri: str, device_models_uri: str | None, serving_dir: Path, out_dir: Path) -> types.Artifact:
    """The AtomicPusher on a model (a Trainer's output folder) and its device models; returns the
    PushedModel artifact (custom properties `pushed`, `pushed_version`)."""
    inputs = {
        standard_component_specs.MODEL_KEY: [artifact(standard_artifacts.Model, model_uri)],
        standard_component_specs.MODEL_BLESSING_KEY: [blessing(out_dir / "blessing")],
    }
    if device_models_uri is not None:
        inputs[DEVICE_MODELS_KEY] = [artifact(DeviceModels, device_models_uri)]
    pushed = artifact(standard_artifacts.PushedModel, out_dir / "pushed_model")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving_dir))
    )
    properties = {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)}
    PusherExecutor().Do(inputs, {standard_component_specs.PUSHED_MODEL_KEY: [pushed]}, properties)
    return pushed


def gate(run_outputs: dict, spec, examples_uri: str | Path, out_dir: Path) -> dict:
    """The DumbBaselineGate on a run's model and transform graph with `spec`, scoring the test split of the
    examples at `examples_uri`; returns its `power.json` record."""
    from components.core.artifacts import (
        BASELINE_BLESSING_KEY,
        POWER_FILE,
        TEST_PREDICTIONS_KEY,
        TestPredictions,
    )
    from components.dumb_baseline_gate.executor import Executor as GateExecutor

    inputs = {
        "model": [artifact(standard_artifacts.Model, run_outputs["Trainer"]["model"][0])],
        "model_blessing": [blessing(run_outputs["Evaluator"]["blessing"][0])],
        "examples": [examples(examples_uri)],
        "transform_graph": [
            artifact(standard_artifacts.TransformGraph, run_outputs["Transform"]["transform_graph"][0])
        ],
    }
    outputs = {
        BASELINE_BLESSING_KEY: [artifact(standard_artifacts.ModelBlessing, out_dir / "blessing")],
        TEST_PREDICTIONS_KEY: [artifact(TestPredictions, out_dir / "predictions")],
    }
    for kind in outputs.values():
        Path(kind[0].uri).mkdir(parents=True, exist_ok=True)
    GateExecutor().Do(inputs, outputs, {PROBLEM_SPEC_KEY: json.dumps(spec.to_config())})
    return json.loads((out_dir / "blessing" / POWER_FILE).read_text())
