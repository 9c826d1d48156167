"""The training pipeline: one `create_pipeline(spec, ...)` used by the CLI and by the Airflow DAGs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tfx.components import Evaluator, StatisticsGen, Trainer, Transform
from tfx.dsl.components.base import base_component
from tfx.dsl.components.common.resolver import Resolver
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2, transform_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components.atomic_pusher import AtomicPusher
from components.checked_csv_example_gen import CheckedCsvExampleGen
from components.core import evaluation
from components.core.artifacts import (
    BASELINE_BLESSING_KEY,
    CODE_VERSION_KEY,
    DEVICE_MODELS_KEY,
    PROBLEM_SPEC_KEY,
    RUN_PARAMETERS_KEY,
    TEST_PREDICTIONS_KEY,
)
from components.core.sources import input_location
from components.core.spec import ProblemSpec
from components.curated_schema_gen import CuratedSchemaGen
from components.dumb_baseline_gate import DumbBaselineGate
from components.model_exporter import ModelExporter
from components.parquet_example_gen import ParquetExampleGen
from components.protocol_tuner import ProtocolTuner
from components.report import StakeholderReportGen
from components.resolvers.newest_spans import (
    EXAMPLES_KEY,
    WINDOW_NODE_ID,
    NewestSpansStrategy,
    WindowResolver,
)
from components.resolvers.previous_blessed_model import PreviousBlessedModelStrategy
from components.strict_example_validator import StrictExampleValidator
from pipelines import settings
from pipelines.paths import RunPaths, pipeline_name
from pipelines.settings import COMPONENTS_DIR

PREPROCESSING_FN = "components.modules.preprocessing_fn.preprocessing_fn"
RUN_FN = "components.modules.run_fn.run_fn"
TUNER_FN = "components.modules.tuner_fn.tuner_fn"
SPLITS = ("train", "eval", "test")
GATE_NODE_ID = "DumbBaselineGate"

# What the components run: their Python modules (the shared core included) and the TF.js runner.
CODE_SUFFIXES = (".py", ".mjs")


def code_version(components_dir: Path = COMPONENTS_DIR) -> str:
    """A fingerprint of the code the components run.

    Transform and Trainer (and our own components) receive it, so editing that code invalidates their
    cached results (TFX only fingerprints module *files*, and we pass import paths). No module of
    `components/` imports `pipelines/` (tests/test_layers.py), so `components/` is all of that code.
    """
    digest = hashlib.sha256()
    files = sorted(p for p in components_dir.rglob("*") if p.suffix in CODE_SUFFIXES and p.is_file())
    for path in files:
        digest.update(str(path.relative_to(components_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class RunParameters:
    """What a single run may change without editing the spec (the Airflow trigger form).

    Values are numbers from the CLI, or Jinja templates such as "{{ params.epochs }}" that Airflow
    renders in each task (TFX's AirflowComponent renders its execution properties as templates).
    """

    epochs: int | str | None = None
    steps_per_epoch: int | str | None = None
    window_spans: int | str | None = None

    @classmethod
    def from_airflow_params(cls) -> RunParameters:
        return cls(**{name: f"{{{{ params.{name} }}}}" for name in cls.__dataclass_fields__})

    def trainer_overrides(self) -> dict[str, str]:
        chosen = {"epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch}
        return {name: str(value) for name, value in chosen.items() if value is not None}


def example_gen_for(spec: ProblemSpec, **config) -> base_component.BaseComponent:
    """The ExampleGen of the spec's data.format: CheckedCsvExampleGen for CSV (formats, strict checks),
    ParquetExampleGen, or TFX's ImportExampleGen for TFRecord files of tf.Examples. The node id stays
    CsvExampleGen for CSV (what earlier runs' metadata and caches know it by)."""
    if spec.data.format == "parquet":
        return ParquetExampleGen(**config).with_id("ParquetExampleGen")
    if spec.data.format == "tfrecord":
        from tfx.components import ImportExampleGen

        return ImportExampleGen(**config).with_id("ImportExampleGen")
    return CheckedCsvExampleGen(csv_format=spec.data.csv_format, **config).with_id("CsvExampleGen")


def create_components(spec: ProblemSpec, paths: RunPaths, run: RunParameters = RunParameters()) -> list:
    """The components of the training pipeline, wired in workflow order.

    A spanned source (`{SPAN}` in data.source) ingests the newest span each run and trains on a
    rolling window of the newest `data.window_spans` spans.
    """
    location = input_location(spec.data.source)
    buckets = spec.split.hash_buckets()
    example_gen = example_gen_for(
        spec,
        input_base=location.base,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="all", pattern=location.pattern)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name=s, hash_buckets=buckets[s]) for s in SPLITS]
            )
        ),
    )
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = CuratedSchemaGen(
        statistics=statistics_gen.outputs["statistics"],
        examples=example_gen.outputs["examples"],
        problem_spec=spec.data_view().to_config(),
        exclude_splits=["eval", "test"],
        code_version=code_version(),
    ).with_id("SchemaGen")
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id("ExampleValidator")
    window = None
    training_examples = example_gen.outputs["examples"]
    if spec.data.spanned:
        window = WindowResolver(
            strategy_class=NewestSpansStrategy,
            config={"num_spans": run.window_spans or spec.data.window_spans},
            examples=Channel(type=standard_artifacts.Examples, producer_component_id=example_gen.id),
        ).with_id(WINDOW_NODE_ID)
        window.add_upstream_node(example_gen)
        training_examples = window.outputs[EXAMPLES_KEY]
    module_config = {PROBLEM_SPEC_KEY: spec.to_config(), CODE_VERSION_KEY: code_version()}
    transform_config = {**module_config, PROBLEM_SPEC_KEY: spec.data_view().to_config()}
    trainer_config = {**module_config, RUN_PARAMETERS_KEY: run.trainer_overrides()}
    transform = Transform(
        examples=training_examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=transform_pb2.SplitsConfig(analyze=["train"]),
        custom_config=transform_config,
        # Pre/post-transform statistics would double Transform's time; StatisticsGen already has them.
        disable_statistics=True,
        # The Trainer applies the transform graph to raw examples as it reads them: nothing is
        # written twice, and a window of several spans reaches it as the spans' own artifacts.
        materialize=False,
        # No analyzer cache: fed back as an input, each run's new cache would change Transform's
        # inputs and defeat TFX's execution cache (a run with no new data would re-run Transform and
        # everything after it); written and never read, it only adds Beam stages.
        disable_analyzer_cache=True,
    )
    # Bad data stops the run here: Transform waits for the validator, which fails on anomalies.
    transform.add_upstream_node(example_validator)
    tuner = None
    if spec.tuning is not None:
        # Scale up until it overfits, then tune; scored by the evaluation protocol on train + eval only.
        tuner = ProtocolTuner(
            tuner_fn=TUNER_FN,
            examples=training_examples,
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
            custom_config=trainer_config,
        ).with_id("Tuner")
    trainer = Trainer(
        run_fn=RUN_FN,
        examples=training_examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        # A tuned run retrains the final model on train + eval with the best values.
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        train_args=trainer_pb2.TrainArgs(
            splits=["train", "eval"] if tuner else ["train"], num_steps=spec.training.total_steps
        ),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
        custom_config=trainer_config,
    )
    baseline = Resolver(
        strategy_class=PreviousBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(
            type=standard_artifacts.ModelBlessing,
            producer_component_id=GATE_NODE_ID,
            output_key=BASELINE_BLESSING_KEY,
        ),
        candidate=trainer.outputs["model"],
    ).with_id("baseline_model_resolver")
    evaluator = Evaluator(
        examples=training_examples,
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=evaluation.eval_config(spec),
        example_splits=[evaluation.EVAL_SPLIT],
    )
    spec_json = json.dumps(spec.to_config())
    gate = DumbBaselineGate(
        examples=training_examples,
        transform_graph=transform.outputs["transform_graph"],
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        problem_spec=spec_json,
        code_version=code_version(),
    ).with_id(GATE_NODE_ID)
    exporter = ModelExporter(
        model=trainer.outputs["model"],
        model_blessing=gate.outputs[BASELINE_BLESSING_KEY],
        examples=training_examples,
        transform_graph=transform.outputs["transform_graph"],
        problem_spec=spec_json,
        code_version=code_version(),
        # The version in service there is what `deployment.max_slowdown` compares with.
        serving_dir=str(paths.serving_dir),
    )
    report = StakeholderReportGen(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        examples=training_examples,
        transform_graph=transform.outputs["transform_graph"],
        model=trainer.outputs["model"],
        model_run=trainer.outputs["model_run"],
        evaluation=evaluator.outputs["evaluation"],
        blessing=gate.outputs[BASELINE_BLESSING_KEY],
        test_predictions=gate.outputs[TEST_PREDICTIONS_KEY],
        device_models=exporter.outputs[DEVICE_MODELS_KEY],
        tuner_results=tuner.outputs["tuner_results"] if tuner else None,
        problem_spec=spec_json,
        code_version=code_version(),
        monitoring_dir=str(paths.monitoring_dir),
    ).with_id("Report")
    pusher = AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=gate.outputs[BASELINE_BLESSING_KEY],
        device_models=exporter.outputs[DEVICE_MODELS_KEY],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(paths.serving_dir))
        ),
    ).with_id("Pusher")
    return [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        *([window] if window else []),
        transform,
        *([tuner] if tuner else []),
        trainer,
        baseline,
        evaluator,
        gate,
        exporter,
        report,
        pusher,
    ]


def create_pipeline(
    spec: ProblemSpec,
    paths: RunPaths,
    beam_args: list[str] | None = None,
    enable_cache: bool = True,
    run: RunParameters = RunParameters(),
) -> Pipeline:
    """The TFX training pipeline for `spec`; MLMD where `paths.metadata_config()` says; Beam where
    `beam_args` say, else where the spec's `beam` section (or $BLUEPRINT_BEAM_PROFILE) says."""
    paths.create()
    return Pipeline(
        pipeline_name=pipeline_name(spec),
        pipeline_root=str(paths.pipeline_root),
        components=create_components(spec, paths, run),
        enable_cache=enable_cache,
        metadata_connection_config=paths.metadata_config(),
        beam_pipeline_args=list(beam_args if beam_args is not None else settings.beam_args(spec)),
    )
