"""The model in service on a landed span: its quality on the span's labels, and its age.

Concept drift (the inputs look the same, the answers change) leaves feature statistics alone, so a span
that carries its label column(s) is also scored by the version in service, in its own runtime (the
pushed SavedModel's `serving_default` on tf.Examples of the span's rows, labels encoded by its
`transformed_labels` signature as it was trained on them), and compared with the test metric it was
blessed with. A model in service older than `retrain.max_age_days` is due for retraining whatever
the data says. `monitoring.check_span` runs both after the bad-data checks and lists every reason.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from components.core import models_config
from components.core.spec import ProblemSpec, TaskType
from pipelines.paths import RunPaths, pipeline_name
from pipelines.workflow import results, scoring

RETRAIN = "retrain"
KEEP = "ok"
NOT_MEASURED = "not measured"
LEVEL = 0.95  # of the bootstrap interval of the metric on the span


@dataclass
class QualityCheck:
    """The spec's metric of the model in service on the span's labelled rows, against its blessed one.

    `drop` is how much worse the span's value is than `blessed`: a difference for a metric in [0, 1], a
    fraction of `blessed` for mse and mae (`drop_kind`), as `retrain.quality_drop` (`allowed_drop`) is.
    `limit` is the metric value beyond which the span counts as worse than allowed.
    """

    metric: str
    version: str | None
    rows: int = 0  # labelled rows scored
    decision: str = NOT_MEASURED
    value: float | None = None
    interval: list[float] | None = None  # 95% bootstrap interval of `value` over the span's rows
    blessed: float | None = None
    blessed_from: str = ""
    drop: float | None = None
    drop_kind: str = "absolute"
    allowed_drop: float | None = None
    limit: float | None = None
    reason: str = ""

    @property
    def retrain(self) -> bool:
        return self.decision == RETRAIN

    def summary(self) -> str:
        if self.decision == NOT_MEASURED:
            return f"  quality: not measured: {self.reason}"
        low, high = self.interval
        verdict = "RETRAIN" if self.retrain else "ok"
        return (
            f"  quality: {self.metric} {self.value:.4f} on {self.rows} labelled row(s) "
            f"(95% interval {low:.4f} to {high:.4f}), blessed {self.blessed:.4f} ({self.blessed_from}): "
            f"{_drop_text(abs(self.drop), self.drop_kind)} {'worse' if self.drop > 0 else 'better'}, "
            f"{_drop_text(self.allowed_drop, self.drop_kind)} worse allowed: {verdict}"
        )


@dataclass
class AgeCheck:
    """How long ago the version in service was pushed, against `retrain.max_age_days`."""

    version: str
    pushed_at: str
    age_days: float
    max_age_days: float | None
    reason: str = ""

    @property
    def retrain(self) -> bool:
        return self.max_age_days is not None and self.age_days > self.max_age_days

    def summary(self) -> str:
        limit = "no limit" if self.max_age_days is None else f"retrain.max_age_days = {self.max_age_days:g}"
        verdict = "RETRAIN" if self.retrain else "ok"
        return (
            f"  age: version {self.version} pushed {self.pushed_at}, {self.age_days:.1f} days ago "
            f"({limit}): {verdict}"
        )


def _drop_text(drop: float, kind: str) -> str:
    return f"{drop * 100:.1f}%" if kind == "relative" else f"{drop:.4f}"


# --- The version in service -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    version: str
    folder: Path
    manifest: dict
    current: dict  # current.json


def served_version(paths: RunPaths) -> Served | None:
    """The version TF Serving serves (`models.config`), or None before the first push."""
    serving_root = paths.serving_dir.parent
    version = models_config.current_versions(serving_root).get(paths.name)
    if version is None:
        return None
    folder = paths.serving_dir / str(version)
    return Served(
        str(version),
        folder,
        models_config.read_manifest(folder),
        models_config.read_current(serving_root, paths.name),
    )


def push_time(served: Served) -> str | None:
    """When the version was pushed: its manifest's `pushed_at`, else the push that `current.json`'s
    history records for it, else when it was pinned (`since`). A rolled-back-to version keeps the age
    of its push: it is as old as the data it was trained on."""
    if served.manifest.get("pushed_at"):
        return served.manifest["pushed_at"]
    pushes = [
        entry.get("at")
        for entry in served.current.get("history", [])
        if str(entry.get("version")) == served.version and entry.get("reason") == "push"
    ]
    return next((at for at in pushes if at), served.current.get("since"))


def age_days(pushed_at: str, now: datetime.datetime) -> float:
    """Days from an ISO-8601 time (UTC when it names no zone) to `now` (aware)."""
    pushed = datetime.datetime.fromisoformat(pushed_at.replace("Z", "+00:00"))
    if pushed.tzinfo is None:
        pushed = pushed.replace(tzinfo=datetime.timezone.utc)
    return (now - pushed).total_seconds() / 86400.0


def check_age(spec: ProblemSpec, paths: RunPaths, now: datetime.datetime | None = None) -> AgeCheck | None:
    """The age of the version in service; None when nothing is served or its push time is unknown."""
    served = served_version(paths)
    pushed_at = push_time(served) if served else None
    if pushed_at is None:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    check = AgeCheck(served.version, pushed_at, age_days(pushed_at, now), spec.retrain.max_age_days)
    if check.retrain:
        check.reason = (
            f"model in service (version {check.version}, pushed {pushed_at}) is {check.age_days:.1f} days "
            f"old, more than retrain.max_age_days = {check.max_age_days:g}"
        )
    return check


# --- Quality on the span --------------------------------------------------------------------------------


def span_examples(pattern: str) -> Iterator:
    """The span's serialized tf.Examples (TFRecord files matching `pattern`, as the drift check's read
    of the span wrote them: typed as ExampleGen types them) in batches of `scoring.BATCH_ROWS`."""
    import tensorflow as tf

    return iter(tf.data.TFRecordDataset(tf.io.gfile.glob(pattern)).batch(scoring.BATCH_ROWS))


def labelled_count(spec: ProblemSpec, raw_feature_spec: dict, pattern: str) -> int:
    """How many of the span's examples carry every label."""
    return sum(
        int(scoring.labelled_examples(spec, raw_feature_spec, batch).shape[0])
        for batch in span_examples(pattern)
    )


def blessed_metric(spec: ProblemSpec, paths: RunPaths, served: Served) -> tuple[float, str] | None:
    """(the spec's metric on the test split, where it comes from) for the version in service: the
    Evaluator's figure that blessed it (its run in MLMD), else the SavedModel's figure in its manifest."""
    from components.core.evaluation import metric_key

    run_id = served.manifest.get("source", {}).get("pipeline_run_id")
    config, pipeline = paths.metadata_config(), pipeline_name(spec)
    run = (
        results.run_summary(config, pipeline, run_id)
        if run_id
        else results.pushing_run(config, pipeline, served.version)
    )
    if run is not None and metric_key(spec) in run.metrics:
        return float(run.metrics[metric_key(spec)]), f"Evaluator, test split, run {run.run_id}"
    serving = [t for t in served.manifest.get("targets", []) if t.get("target") == "serving"]
    if serving and serving[0].get("metric") is not None:
        return float(serving[0]["metric"]), "manifest.json, test split"
    return None


def allowed_drop(spec: ProblemSpec, blessed: float) -> float:
    """`retrain.quality_drop` in the metric's units: as is for a metric in [0, 1], times the blessed
    value for mse and mae (0.05 of AUC is a real loss; 0.05 of an MAE of 148 dollars is nothing)."""
    drop = spec.retrain.quality_drop
    return drop if spec.metric.bounded else drop * abs(blessed)


def quality_limit(spec: ProblemSpec, blessed: float) -> float:
    """The metric value beyond which the span is worse than `retrain.quality_drop` allows."""
    allowed = allowed_drop(spec, blessed)
    return blessed - allowed if spec.metric.higher_is_better else blessed + allowed


def drop_of(spec: ProblemSpec, blessed: float, value: float) -> float:
    """How much worse `value` is than `blessed`: a difference (bounded metrics) or a fraction of it."""
    worse = blessed - value if spec.metric.higher_is_better else value - blessed
    if spec.metric.bounded:
        return worse
    if blessed == 0:
        return math.inf if worse > 0 else 0.0
    return worse / abs(blessed)


def beyond_limit(spec: ProblemSpec, limit: float, value: float, interval: tuple[float, float]) -> bool:
    """Whether the span is worse than allowed: the value AND its whole 95% interval beyond `limit`.

    A span's metric is an estimate, and small spans give wide ones: on 200 taxi trips the interval of
    AUC is about 0.14 wide, so a span of unchanged data would fall more than 0.05 below the blessed
    figure now and then by chance alone. Requiring the interval's better end to be beyond the limit too
    retrains only on a drop the span's size can show (about one false alarm in 40 checks of unchanged
    data, at most), while a real one (labels flipped on 40% of rows: AUC 0.9 -> about 0.6) is beyond
    it on a few hundred rows. The blessed figure is taken as given.
    """
    low, high = interval
    if spec.metric.higher_is_better:
        return value < limit and high < limit
    return value > limit and low > limit


def decide(spec: ProblemSpec, check: QualityCheck, span: int) -> QualityCheck:
    """Fills the drop, the limit and the decision of a check with its value, interval and blessed figure."""
    check.drop = drop_of(spec, check.blessed, check.value)
    check.drop_kind = "absolute" if spec.metric.bounded else "relative"
    check.allowed_drop = spec.retrain.quality_drop
    check.limit = quality_limit(spec, check.blessed)
    retrain = beyond_limit(spec, check.limit, check.value, tuple(check.interval))
    check.decision = RETRAIN if retrain else KEEP
    if retrain:
        low, high = check.interval
        check.reason = (
            f"{check.metric} of the model in service (version {check.version}) on span {span} is "
            f"{check.value:.4f} (95% interval {low:.4f} to {high:.4f}) against {check.blessed:.4f} on its "
            f"test split: {_drop_text(check.drop, check.drop_kind)} worse, more than retrain.quality_drop = "
            f"{spec.retrain.quality_drop:g}" + ("" if spec.metric.bounded else " (relative)")
        )
    return check


def check_quality(
    spec: ProblemSpec,
    paths: RunPaths,
    span: int,
    examples: str,
    production: results.ProductionModel,
) -> QualityCheck | None:
    """The version in service scored on the span's labelled examples (TFRecord files matching
    `examples`); None when the span has no labels.

    `production` (MLMD's newest push) gives the raw feature types when it is the version in service;
    after a rollback the served version's own lineage does (its manifest's `source.model_artifact_id`).
    """
    import tensorflow_transform as tft

    rows = labelled_count(spec, tft.TFTransformOutput(production.transform_uri).raw_feature_spec(), examples)
    if not rows:
        return None
    served = served_version(paths)
    check = QualityCheck(spec.metric.name, served.version if served else None, rows=rows)
    lineage = _lineage(paths, served, production) if served else None
    blessed = blessed_metric(spec, paths, served) if lineage else None
    if lineage is None or blessed is None:
        check.reason = (
            f"the version in service under '{paths.serving_dir}' has no recorded lineage or test "
            f"{spec.metric.name} in ML Metadata at {paths.metadata_location()}"
        )
        return check
    check.blessed, check.blessed_from = blessed
    return _scored(spec, check, served, lineage, examples, span)


def _lineage(
    paths: RunPaths, served: Served, production: results.ProductionModel
) -> results.ProductionModel | None:
    if served.version == production.version:
        return production
    artifact_id = served.manifest.get("source", {}).get("model_artifact_id")
    if artifact_id is None:
        return None
    return results.pushed_model(results.open_store(paths.metadata_config()), artifact_id, served.version)


def _scored(
    spec: ProblemSpec,
    check: QualityCheck,
    served: Served,
    lineage: results.ProductionModel,
    examples: str,
    span: int,
) -> QualityCheck:
    import tensorflow_transform as tft

    from components.scoring import metrics

    raw_spec = tft.TFTransformOutput(lineage.transform_uri).raw_feature_spec()
    labels, predictions = scoring.example_predictions(
        spec, str(served.folder), raw_spec, span_examples(examples)
    )
    if spec.task == TaskType.MULTICLASS:  # -1: a class the model never saw, which it cannot be scored on
        known = labels >= 0
        labels, predictions, check.rows = labels[known], predictions[known], int(known.sum())
    name, task = spec.metric.name, spec.task.value
    try:
        check.value = metrics.metric_value(name, task, labels, predictions)
        check.interval = list(metrics.bootstrap_interval(name, task, labels, predictions, level=LEVEL))
    except metrics.UndefinedMetricError as error:
        check.reason = f"{name} is undefined on the span's {check.rows} labelled row(s): {error}"
        return check
    return decide(spec, check, span)
