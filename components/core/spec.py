"""The problem spec: what a user writes once to describe a task (YAML in `config/`).

`load_spec(path)` reads a spec with a safe YAML loader, validates every field, checks it against the
header of the data it points at, and returns a `ProblemSpec`. Every mistake a user can make ends in a
single `SpecError` whose message names the file, the field and what to do.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.core import sources
from components.core.tables import DEFAULT_MISSING_VALUES, CsvFormat


class SpecError(ValueError):
    """A problem spec that cannot be used; the message names the file and the field."""


class TaskType(str, Enum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"


class FeatureKind(str, Enum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"  # ISO-8601 text or Unix seconds: hour of day, day of week, month
    AUTO = "auto"  # inferred from the schema: text -> categorical, numbers -> numeric


# Binary labels written as text: the pairs whose positive value needs no `positive_class` (any case).
POSITIVE_WORDS = ("1", "true", "yes", "y", "t")
NEGATIVE_WORDS = ("0", "false", "no", "n", "f")


def positive_of(values: list[str], positive_class: str | None) -> str | None:
    """Which of a binary label's two text values is the positive one, or None when they do not say it."""
    folded = {value.strip().lower(): value for value in values}
    if positive_class is not None:
        return folded.get(positive_class.strip().lower())
    positives = [v for v in folded if v in POSITIVE_WORDS]
    negatives = [v for v in folded if v in NEGATIVE_WORDS]
    return folded[positives[0]] if len(positives) == 1 and len(negatives) == 1 and len(folded) == 2 else None


# metric name -> (tasks it applies to, True when higher is better)
METRICS: dict[str, tuple[frozenset[TaskType], bool]] = {
    "auc": (frozenset({TaskType.BINARY, TaskType.MULTILABEL}), True),
    "auc_pr": (frozenset({TaskType.BINARY, TaskType.MULTILABEL}), True),
    "precision": (frozenset({TaskType.BINARY}), True),
    "recall": (frozenset({TaskType.BINARY}), True),
    "accuracy": (frozenset({TaskType.BINARY, TaskType.MULTICLASS}), True),
    "mse": (frozenset({TaskType.REGRESSION}), False),
    "mae": (frozenset({TaskType.REGRESSION}), False),
}
# Metrics confined to [0, 1]: a tolerance on one of them is a difference of the metric itself. The others
# (mse, mae) are in the label's units, squared for mse, and have no scale of their own: a tolerance on
# them is a fraction of the reference value (0.01 = 1%).
BOUNDED_METRICS = frozenset({"auc", "auc_pr", "precision", "recall", "accuracy"})


PositiveInt = Annotated[int, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SPAN_TOKEN = "{SPAN}"
CRON_PRESETS = frozenset({"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"})


class DataSpec(_Strict):
    source: str = Field(
        description="CSV path or glob; relative to the spec file, or pkg://package/path. "
        "With {SPAN} in it (e.g. ../data/landing/taxi/span-{SPAN}/*.csv) the data arrives in spans."
    )
    format: Literal["csv", "parquet", "tfrecord"] = Field(
        "csv",
        description="csv (plain or .gz); parquet; tfrecord (tf.Examples, plain or .gz). Spans ({SPAN}) "
        "and the drift check read CSV",
    )
    window_spans: PositiveInt = Field(4, description="train on the newest N spans (spanned sources)")
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(
        None, description="what separates the cells; detected from each file's first lines when omitted"
    )
    missing_values: tuple[str, ...] = Field(
        DEFAULT_MISSING_VALUES,
        description="cells that mean 'missing' (compared with surrounding spaces dropped); [] for none",
    )

    @field_validator("source")
    @classmethod
    def _one_span_token(cls, source: str) -> str:
        if source.count(SPAN_TOKEN) > 1:
            raise ValueError(f"'{source}' holds {SPAN_TOKEN} more than once; use it once, in a folder name")
        return source

    @model_validator(mode="after")
    def _spans_are_csv(self) -> DataSpec:
        if self.spanned and self.format != "csv":
            raise ValueError(
                f"format {self.format} with {SPAN_TOKEN}: spans and their drift check read CSV files only; "
                "land the spans as CSV"
            )
        return self

    @property
    def spanned(self) -> bool:
        return SPAN_TOKEN in self.source

    @property
    def source_glob(self) -> str:
        """The source as a glob matching every span's files."""
        return self.source.replace(SPAN_TOKEN, "*")

    @property
    def csv_format(self) -> CsvFormat:
        return CsvFormat(self.delimiter, self.missing_values)


class ScheduleSpec(_Strict):
    """When Airflow runs the DAGs: cron expressions or presets (@daily); null means only on demand."""

    training: str | None = None
    monitoring: str | None = "@daily"
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    retry_delay_minutes: Annotated[float, Field(gt=0)] = 5.0

    @field_validator("training", "monitoring")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None or value in CRON_PRESETS:
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(
                f"'{value}' is not a cron expression (like '0 3 * * 1') "
                f"or one of {', '.join(sorted(CRON_PRESETS))}"
            )
        return value


Threshold = Annotated[float, Field(gt=0, le=1)]


class DriftSpec(_Strict):
    """How far a new span may move from the production model's training data before retraining.

    TFDV measures L-infinity distance for categorical features and Jensen-Shannon divergence for
    numeric ones (both 0..1); `features` overrides the default for single features.
    """

    categorical_linf: Threshold = 0.1
    numeric_jsd: Threshold = 0.1
    features: dict[str, Threshold] = Field(default_factory=dict)


class SplitSpec(_Strict):
    train: float = 0.8
    eval: float = 0.1
    test: float = 0.1

    @model_validator(mode="after")
    def _ratios(self) -> SplitSpec:
        for name in ("train", "eval", "test"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"ratio '{name}' is {value}; every ratio must be between 0 and 1")
        total = self.train + self.eval + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"ratios add up to {total:g}; train + eval + test must add up to 1")
        return self

    def hash_buckets(self) -> dict[str, int]:
        """The ratios as ExampleGen hash buckets (per 100)."""
        return {name: round(getattr(self, name) * 100) for name in ("train", "eval", "test")}


class MetricSpec(_Strict):
    name: str
    threshold: float

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in METRICS:
            raise ValueError(f"unknown metric '{name}'; expected one of {', '.join(METRICS)}")
        return name

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.name][1]

    @property
    def bounded(self) -> bool:
        """True for a metric in [0, 1] (tolerances on it are absolute), False for mse / mae (relative)."""
        return self.name in BOUNDED_METRICS


class TrainingSpec(_Strict):
    """How the network trains when `tuning` is off (a tuned run takes its network, regularization, learning
    rate, batch size and epochs from the search). An epoch is one pass over the training rows unless
    `steps_per_epoch` says otherwise; training stops early when the validation loss has not improved for
    `early_stopping_patience` epochs, keeping the best weights, so `epochs` is a ceiling."""

    epochs: PositiveInt = 100
    steps_per_epoch: PositiveInt | None = Field(
        None, description="batches per epoch; empty: one pass over the training rows"
    )
    batch_size: PositiveInt = 128
    hidden_units: list[PositiveInt] = Field(default_factory=lambda: [64, 32])
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    learning_rate: Annotated[float, Field(gt=0)] = 0.001
    l1: Annotated[float, Field(ge=0)] = 0.0
    l2: Annotated[float, Field(ge=0)] = 0.0
    early_stopping_patience: PositiveInt = 3
    seed: int = 0  # weights, dropout and the order of training rows: the same data gives the same model
    numeric_encoding: Literal["zscore", "buckets"] = Field(
        "zscore",
        description="how the network sees a numeric feature: its clipped z-score, or beside it an embedding "
        "of its training-quantile bucket (the tuner tries both)",
    )
    label_scale: Literal["linear", "log"] = Field(
        "linear",
        description="regression only: 'log' trains on log(1 + label) and predicts back in the label's units "
        "(the tuner tries it for a skewed label of values 0 or more)",
    )

    @property
    def total_steps(self) -> int | None:
        """The training steps, when the spec fixes them (None: epochs of one pass each)."""
        return None if self.steps_per_epoch is None else self.epochs * self.steps_per_epoch


class SensitiveSpec(_Strict):
    """Columns whose groups a binary classifier must treat alike: across the groups (values) of each column
    with at least `evaluation.slice_min_rows` test rows, the false-positive rates and the false-negative
    rates (at the 0.5 decision threshold) may each differ by at most `max_gap`."""

    features: list[str] = Field(min_length=1)
    max_gap: Annotated[float, Field(gt=0, le=1)] = 0.1


class EvaluationSpec(_Strict):
    """How models are scored before the test split is touched, and what "beating the dumb baseline" means.

    holdout scores on the eval split; kfold pools train + eval and rotates K validation folds;
    iterated_kfold repeats K-fold `repetitions` times with a different shuffle each time. The test split
    never takes part: the final model is evaluated on it once.
    """

    protocol: Literal["holdout", "kfold", "iterated_kfold"] = "holdout"
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    repetitions: Annotated[int, Field(ge=1, le=20)] = 3
    seed: int = 0
    baseline_margin: Annotated[float, Field(ge=0)] = Field(
        0.0,
        description="how much the model must beat the dumb baseline by on the test split (in the metric's "
        "units), as the lower end of a 95% bootstrap interval; 0 means 'better, with 95% confidence'",
    )
    test_gap: Annotated[float, Field(gt=0)] = Field(
        0.05,
        description="flag the final model when its test metric is worse than its validation metric by more "
        "than this (absolute for AUC/accuracy-like metrics, relative for mse/mae)",
    )
    slices: list[str] = Field(default_factory=list, description="features to break the test metrics down by")
    slice_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="column -> the value of the spec's metric every slice of it (each of its values) must "
        "reach on the test split, as the whole split must reach metric.threshold; a model with a slice "
        "below it is not blessed (the DumbBaselineGate checks it)",
    )
    slice_min_rows: PositiveInt = Field(
        30, description="slices with fewer test rows are too small to judge: not gated"
    )

    sensitive: SensitiveSpec | None = None

    @property
    def sliced_features(self) -> list[str]:
        """The features the test metrics are broken down by: `slices`, then the gated ones."""
        sensitive = self.sensitive.features if self.sensitive else []
        return list(dict.fromkeys([*self.slices, *self.slice_thresholds, *sensitive]))

    @property
    def fold_count(self) -> int:
        """Validation folds per repetition (1 for hold-out)."""
        return 1 if self.protocol == "holdout" else self.folds

    @property
    def repetition_count(self) -> int:
        return self.repetitions if self.protocol == "iterated_kfold" else 1

    def describe(self) -> str:
        if self.protocol == "holdout":
            return "hold-out"
        if self.protocol == "kfold":
            return f"{self.folds}-fold"
        return f"{self.repetitions}x iterated {self.folds}-fold"


DEFAULT_CAPACITY_LADDER = [[16], [64, 32], [256, 128], [512, 256, 128]]
# Sized so a five-line spec over the taxi table (15k rows) runs the whole workflow in about 6 minutes on
# 2 cores; a spec's `tuning.budget_minutes` changes it.
DEFAULT_TUNING_MINUTES = 2.0


class TuningSpec(_Strict):
    """Scale up until it overfits, then regularize and tune (KerasTuner through TFX Tuner): on by default.

    The capacity sweep trains each network of `capacity` in turn (narrow and shallow first) for up to
    `max_epochs`, and stops at the first whose validation loss turns up. The tuner then searches units,
    depth, dropout, L1/L2, learning rate and batch size around that network, each trial scored by the
    evaluation protocol; the final model is retrained on train + eval with the best values. Sweep and
    search together stop at `budget_minutes` of wall time (the trial under way finishes; at least one trial
    runs) or after `trials` trials, whichever comes first. `tuning: off` trains `training` as written.
    """

    budget_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = Field(
        DEFAULT_TUNING_MINUTES, description="wall time for the capacity sweep and the search together"
    )
    trials: Annotated[int, Field(ge=1, le=200)] = 30
    search: Literal["bayesian", "random"] = Field(
        "bayesian", description="KerasTuner's Bayesian optimization (Gaussian process) or random search"
    )
    capacity: list[list[PositiveInt]] = Field(
        default_factory=lambda: [list(u) for u in DEFAULT_CAPACITY_LADDER]
    )
    max_epochs: PositiveInt = 30
    seed: int = 0

    @field_validator("capacity")
    @classmethod
    def _ladder(cls, ladder: list[list[int]]) -> list[list[int]]:
        if not ladder or any(not layers for layers in ladder):
            raise ValueError("list one or more networks, each a non-empty list of layer widths like [64, 32]")
        return ladder


TUNING_OFF = ("off", "false", "no", "none")


def tuning_setting(value: object) -> object:
    """`tuning: off` (YAML reads it as false) or `false`/`no`/`null`: no tuning; `on`/`true`: the default."""
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in TUNING_OFF):
        return None
    if value is True or (isinstance(value, str) and value.strip().lower() in ("on", "true", "yes")):
        return {}
    return value


class VocabularySpec(_Strict):
    top_k: PositiveInt = 1000
    min_frequency: PositiveInt = 1
    oov_buckets: PositiveInt = 1


class PreprocessingSpec(_Strict):
    numeric_missing: Literal["mean", "median"] = "mean"
    vocabulary: VocabularySpec = VocabularySpec()
    datetime_elapsed: bool = Field(
        False,
        description="a date-time feature also gives the time elapsed (its Unix seconds, scaled like a "
        "numeric feature: a trend over the years), besides its hour, weekday and month",
    )


class RetrainSpec(_Strict):
    """When a new span makes the monitoring DAG trigger training (drift over threshold always does).

    A span that carries labels is also scored by the model in service: a drop of the spec's metric beyond
    `quality_drop` against the test metric it was blessed with triggers training even when no feature
    drifted (concept drift). `max_age_days`: a model in service older than that triggers training.
    """

    on_new_span: bool = False
    quality_drop: Annotated[float, Field(gt=0)] = Field(
        0.05,
        description="how much worse the model in service may score on a labelled span than on its test "
        "split: a difference for a metric in [0, 1] (auc, accuracy), a fraction of it for mse and mae",
    )
    max_age_days: Annotated[float, Field(gt=0)] | None = Field(
        None, description="retrain a model in service older than this many days; empty: never for age"
    )


TFLITE_VARIANTS = ("float32", "dynamic", "int8")
TFJS_VARIANTS = ("float32", "float16", "uint8")
TfliteVariant = Literal["float32", "dynamic", "int8"]
TfjsVariant = Literal["float32", "float16", "uint8"]


class PruningSpec(_Strict):
    """Magnitude pruning (tensorflow-model-optimization) after training, before the Evaluator."""

    target_sparsity: Annotated[float, Field(gt=0, lt=1)] = Field(
        description="fraction of the weights of each dense and embedding layer set to zero"
    )
    epochs: PositiveInt = Field(2, description="fine-tuning epochs under the pruning schedule")


class ParitySpec(_Strict):
    """How close each device target must stay to the SavedModel on the test split to be pushed.

    The gate is on the metric alone. Each target's largest difference from the SavedModel on a single test
    row (in the label's units for regression) is recorded, and flagged rather than refused when it exceeds
    the SavedModel's own mean absolute error: a few rows far off can hide in an average.
    """

    tolerance: Annotated[float, Field(ge=0)] = Field(
        0.01,
        description="largest loss of the spec's metric against the SavedModel's on the test split: a "
        "difference of the metric for one in [0, 1] (auc, auc_pr, precision, recall, accuracy), a fraction "
        "of the SavedModel's value for mse and mae (0.01 = 1% worse)",
    )
    latency_calls: PositiveInt = Field(200, description="single-example calls timed per target")


class DeploymentSpec(_Strict):
    """What is built for devices and browsers; TF Serving always gets the SavedModel.

    tflite: float32, dynamic (dynamic-range quantized weights), int8 (full-integer, calibrated on
    training rows). tfjs: graph models with float32, float16 or uint8 weights. Empty lists build nothing.
    max_latency_ms, max_size_kb, max_slowdown: compute gates the ModelExporter checks after parity; a
    target failing one is not pushed, and a SavedModel (`serving`) failing one means nothing is pushed.
    """

    tflite: list[TfliteVariant] = Field(default_factory=lambda: list(TFLITE_VARIANTS))
    tfjs: list[TfjsVariant] = Field(default_factory=lambda: ["float32", "uint8"])
    pruning: PruningSpec | None = None
    parity: ParitySpec = ParitySpec()
    max_latency_ms: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="target (serving, tflite-int8, tfjs-uint8, ...) -> the most its p50 single-example "
        "latency may be; a target over it is not pushed",
    )
    max_size_kb: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="target -> the most its files may weigh (kB, 1000 bytes)"
    )
    max_slowdown: Annotated[float, Field(ge=1)] | None = Field(
        None,
        description="the most a target's p50 latency may be, as a multiple of the same target's in the "
        "version in service (1.5: at most 50% slower); empty: no limit",
    )

    @property
    def target_names(self) -> list[str]:
        """serving, then tflite-<variant> and tfjs-<variant> for every device model built."""
        return ["serving", *(f"tflite-{v}" for v in self.tflite), *(f"tfjs-{v}" for v in self.tfjs)]

    @model_validator(mode="after")
    def _budgets_name_built_targets(self) -> DeploymentSpec:
        for field in ("max_latency_ms", "max_size_kb"):
            unknown = sorted(set(getattr(self, field)) - set(self.target_names))
            if unknown:
                raise ValueError(
                    f"field 'deployment.{field}': {', '.join(unknown)} is not a target this spec builds; "
                    f"use {', '.join(self.target_names)}"
                )
        return self

    @field_validator("tflite", "tfjs")
    @classmethod
    def _no_repeats(cls, variants: list[str]) -> list[str]:
        repeated = sorted({v for v in variants if variants.count(v) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once; list each variant once")
        return variants


BEAM_RUNNERS = {
    "direct": "DirectRunner",
    "portable": "PortableRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "dataflow": "DataflowRunner",
}


class BeamSpec(_Strict):
    """Where the Beam components run: ExampleGen, StatisticsGen, Transform, the Evaluator and the drift check.

    direct: Beam's DirectRunner on this machine (`direct_running_mode`, `direct_num_workers`; 0 workers
    means one per core). portable: Beam's PortableRunner against a job service at `job_endpoint` (the job
    API that Flink's and Spark's job servers implement, and Beam's own local one), its SDK workers as
    `environment_type` says (EXTERNAL: a worker pool at `environment_config`; LOOPBACK: in this process).
    flink, spark, dataflow: those runners, configured through `args` (config/beam/ has a profile of each).
    `args`: any further Beam pipeline options, passed as written.
    """

    runner: Literal["direct", "portable", "flink", "spark", "dataflow"] = "direct"
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: Annotated[int, Field(ge=0)] = 1
    job_endpoint: str | None = Field(None, description="portable: host:port of the job service")
    environment_type: Literal["LOOPBACK", "EXTERNAL", "PROCESS", "DOCKER"] = "LOOPBACK"
    environment_config: str | None = Field(None, description="EXTERNAL: host:port of the SDK worker pool")
    args: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> BeamSpec:
        if self.runner == "portable" and not self.job_endpoint:
            raise ValueError(
                "field 'beam.job_endpoint': the portable runner needs the job service's host:port"
            )
        if self.environment_type == "EXTERNAL" and not self.environment_config:
            raise ValueError(
                "field 'beam.environment_config': an EXTERNAL environment needs the worker pool's host:port"
            )
        if any(arg.startswith("--runner") for arg in self.args):
            raise ValueError("field 'beam.args': choose the runner with 'beam.runner', not --runner")
        return self

    def pipeline_args(self) -> list[str]:
        """The Beam pipeline options every Beam component of a run gets."""
        args = [f"--runner={BEAM_RUNNERS[self.runner]}"]
        if self.runner == "direct":
            args += [
                f"--direct_running_mode={self.direct_running_mode}",
                f"--direct_num_workers={self.direct_num_workers}",
            ]
        if self.runner == "portable":
            args += [f"--job_endpoint={self.job_endpoint}", f"--environment_type={self.environment_type}"]
            if self.environment_config:
                args.append(f"--environment_config={self.environment_config}")
        return args + list(self.args)


class ProblemSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    description: str = ""
    data: DataSpec
    label: str | list[str]
    task: TaskType
    positive_class: str | None = Field(
        None, description="binary: the label value that means yes, where the two values do not say it"
    )

    features: dict[str, FeatureKind] | None = None
    exclude: list[str] = Field(default_factory=list)
    found_datetimes: tuple[str, ...] = Field(
        (),
        description="filled in when the spec is loaded, not by hand: the auto features whose sampled "
        "cells are all ISO-8601 dates or date-times, used as datetime",
    )
    split: SplitSpec = SplitSpec()
    metric: MetricSpec
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    tuning: TuningSpec | None = Field(
        default_factory=TuningSpec,
        description="the capacity sweep and the search, on by default within a budget; `off` trains "
        "`training` as written",
    )
    preprocessing: PreprocessingSpec = PreprocessingSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    drift: DriftSpec = DriftSpec()
    retrain: RetrainSpec = RetrainSpec()
    deployment: DeploymentSpec = DeploymentSpec()
    beam: BeamSpec = BeamSpec()

    @field_validator("positive_class", mode="before")
    @classmethod
    def _number_as_written(cls, value):
        """`positive_class: 4` (YAML reads a number) names the label value written 4."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value
        return f"{value:g}"

    @field_validator("tuning", mode="before")
    @classmethod
    def _tuning_switch(cls, value: Any) -> Any:
        return tuning_setting(value)

    @field_validator("features", mode="before")
    @classmethod
    def _feature_list(cls, features: Any) -> Any:
        """A plain list of names means: infer each kind from the schema."""
        if isinstance(features, list):
            if not all(isinstance(name, str) for name in features):
                raise ValueError("field 'features': a list of features must hold column names only")
            return {name: FeatureKind.AUTO.value for name in features}
        return features

    @model_validator(mode="after")
    def _consistent(self) -> ProblemSpec:
        labels = self.label_columns
        if self.task == TaskType.MULTILABEL and len(labels) < 2:
            raise ValueError("field 'label': a multilabel task needs a list of two or more label columns")
        if self.task != TaskType.MULTILABEL and isinstance(self.label, list):
            raise ValueError(f"field 'label': a {self.task.value} task has one label column, not a list")
        if self.positive_class is not None and self.task != TaskType.BINARY:
            raise ValueError(f"field 'positive_class': applies to binary tasks, not {self.task.value}")
        if self.evaluation.sensitive is not None and self.task != TaskType.BINARY:
            raise ValueError(
                f"field 'evaluation.sensitive': false-positive and false-negative rates are a binary "
                f"classifier's; a {self.task.value} task cannot use it"
            )
        if self.training.label_scale == "log" and self.task != TaskType.REGRESSION:
            raise ValueError(
                f"field 'training.label_scale': 'log' applies to regression, not {self.task.value}; remove it"
            )
        tasks, _ = METRICS[self.metric.name]
        if self.task not in tasks:
            raise ValueError(
                f"field 'metric.name': '{self.metric.name}' does not apply to a {self.task.value} task; "
                f"use one of {', '.join(m for m, (t, _) in METRICS.items() if self.task in t)}"
            )
        for column in labels:
            if column in (self.features or {}):
                raise ValueError(f"field 'features': '{column}' is the label; it cannot be a feature")
            if column in self.exclude:
                raise ValueError(f"field 'exclude': '{column}' is the label; it cannot be excluded")
        return self

    @property
    def label_columns(self) -> list[str]:
        return list(self.label) if isinstance(self.label, list) else [self.label]

    def feature_columns(self, columns: list[str]) -> dict[str, FeatureKind]:
        """The features used for training, given the columns the data holds."""
        if self.features is not None:
            chosen = dict(self.features)
        else:
            chosen = {name: FeatureKind.AUTO for name in columns}
        for column in [*self.label_columns, *self.exclude]:
            chosen.pop(column, None)
        for name in self.found_datetimes:
            if chosen.get(name) == FeatureKind.AUTO:
                chosen[name] = FeatureKind.DATETIME
        return chosen

    def data_view(self) -> ProblemSpec:
        """Only what decides how data is read, checked and transformed (SchemaGen's and Transform's input).

        Training, tuning, evaluation, deployment and schedule fields are reset, so editing them keeps
        those components' cached results: TFX caches on exec properties, and the spec is one.
        """
        return self.model_copy(
            update={
                "description": "",
                "metric": self.metric.model_copy(update={"threshold": 0.0}),
                "training": TrainingSpec(),
                "evaluation": EvaluationSpec(),
                "tuning": None,
                "schedule": ScheduleSpec(),
                "drift": DriftSpec(),
                "retrain": RetrainSpec(),
                "deployment": DeploymentSpec(),
                "beam": BeamSpec(),
            }
        )

    def unused_columns(self, columns: list[str]) -> list[str]:
        """Columns of the data that are neither label, feature nor excluded: ignored, with a warning."""
        named = {*self.label_columns, *self.exclude, *self.feature_columns(columns)}
        return [column for column in columns if column not in named]

    def to_config(self) -> dict[str, Any]:
        """A JSON-ready dict for TFX `custom_config` and exec properties."""
        return self.model_dump(mode="json")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ProblemSpec:
        return cls.model_validate(config)


def load_spec(path: str | Path, check_data: bool = True) -> ProblemSpec:
    """Reads, validates and returns the spec at `path`; raises SpecError naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found; pass the path of a YAML problem spec")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not a valid YAML spec: {error}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a YAML mapping of fields (name, data, label, ...)")
    try:
        spec = ProblemSpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(_format_errors(path, error)) from None
    try:
        source = sources.resolve(spec.data.source, path.parent)
    except sources.SourceError as error:
        raise SpecError(f"{path}: field 'data.source': {error}") from None
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})
    if check_data:
        columns = check_against_data(spec, path)
        if columns:
            spec = with_found_datetimes(spec, columns)
    return spec


def with_found_datetimes(spec: ProblemSpec, columns: list[str]) -> ProblemSpec:
    """The spec with `found_datetimes`: its auto features that hold ISO-8601 text (CSV, sampled from the
    newest file) or a timestamp or date type (Parquet)."""
    auto = [name for name, kind in spec.feature_columns(columns).items() if kind == FeatureKind.AUTO]
    if not auto or spec.data.format == "tfrecord":
        return spec
    newest = sources.glob_files(spec.data.source_glob)[-1]
    found = sources.date_time_columns(newest, spec.data.csv_format, spec.data.format, auto)
    return spec.model_copy(update={"found_datetimes": tuple(found)}) if found else spec


def check_against_data(spec: ProblemSpec, path: Path) -> list[str]:
    """Checks that the data exists and holds every column the spec names; returns its columns ([] when
    no span has landed yet)."""
    if spec.data.spanned and not sources.glob_files(spec.data.source_glob):
        return []  # nothing has landed yet; each span is checked by the monitoring DAG when it lands
    try:
        columns = sources.read_header(spec.data.source_glob, spec.data.csv_format, spec.data.format)
    except sources.SourceError as error:
        raise SpecError(f"{path}: field 'data.source': {error}") from None
    known = set(columns)
    shown = ", ".join(columns)
    for column in spec.label_columns:
        if column not in known:
            raise SpecError(f"{path}: field 'label': column '{column}' is not in the data (columns: {shown})")
    named = (
        ("features", list(spec.features or {})),
        ("exclude", spec.exclude),
        ("drift.features", list(spec.drift.features)),
        ("evaluation.slices", spec.evaluation.slices),
        ("evaluation.slice_thresholds", list(spec.evaluation.slice_thresholds)),
        ("evaluation.sensitive", spec.evaluation.sensitive.features if spec.evaluation.sensitive else []),
    )
    for field, names in named:
        for name in names:
            if name not in known:
                raise SpecError(
                    f"{path}: field '{field}': column '{name}' is not in the data (columns: {shown})"
                )
    if not spec.feature_columns(columns):
        raise SpecError(f"{path}: field 'features': no feature columns are left to train on")
    return columns


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; check its spelling or remove it"
        elif item["type"] == "enum" and item["loc"][:1] == ("task",):
            message = f"unknown task type {item['input']!r}; expected one of " + ", ".join(
                t.value for t in TaskType
            )
        if message.startswith("field '"):
            lines.append(f"{path}: {message}")
        elif field:
            lines.append(f"{path}: field '{field}': {message}")
        else:
            lines.append(f"{path}: {message}")
    return "\n".join(lines)
