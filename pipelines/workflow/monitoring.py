"""Checks a newly landed span before anything trains on it: schema anomalies and drift (TFDV).

`check_span` computes the span's statistics, validates them against the production model's schema
(bad data: stop, keep serving) and measures drift against the statistics of the data the production
model was trained on: L-infinity distance for categorical features, Jensen-Shannon divergence for
numeric ones, with the spec's thresholds; a feature drifts only past its noise floor too, what random
samples of that data of the span's size reach by chance (`drift_noise.py`). A span that carries labels
is also scored by the model in service against the test metric it was blessed with (concept drift), and
the model's age is checked against `retrain.max_age_days` (`quality.py`). Every check writes a JSON
report and a text summary.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tensorflow_data_validation as tfdv
from absl import logging
from google.protobuf.message import DecodeError
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.utils import io_utils

from components.core import annotations
from components.core.files import replace_file
from components.core.spec import BeamSpec, FeatureKind, ProblemSpec
from components.core.tables import CsvFormat
from pipelines.paths import RunPaths
from pipelines.settings import beam_args, beam_settings
from pipelines.workflow import landing, quality, results

BAD_DATA = "bad_data"
RETRAIN = "retrain"
NO_DRIFT = "no_drift"
NEW_SPAN = "new_span"
FIRST_MODEL = "no_production_model"
IN_PROCESS_BYTES = 64 * 2**20  # a span of files this size or smaller is read without Beam (span_statistics)
_DRIFT_MEASURES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "l_infinity",
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "jensen_shannon_divergence",
}


class BadSpanError(RuntimeError):
    """The span breaks the production schema; the message lists every anomaly by column."""


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    measure: str
    value: float
    threshold: float
    noise_floor: float | None = None  # what a same-distribution span of this size reaches (drift_noise)

    @property
    def limit(self) -> float:
        """What the value must exceed to drift: the threshold, and the noise floor when it is higher."""
        return max(self.threshold, self.noise_floor or 0.0)

    @property
    def drifted(self) -> bool:
        return self.value > self.limit


@dataclass
class DriftReport:
    model: str
    span: int
    checked_at: str
    files: list[str]
    rows: int
    decision: str
    reason: str
    production_version: str | None = None
    production_spans: list[int] = field(default_factory=list)
    schema_anomalies: dict[str, str] = field(default_factory=dict)
    drift: list[FeatureDrift] = field(default_factory=list)
    unseen_categories: dict[str, list[str]] = field(default_factory=dict)
    quality: quality.QualityCheck | None = None  # the model in service on the span's labels
    age: quality.AgeCheck | None = None  # the model in service's age
    reasons: list[str] = field(default_factory=list)  # every reason to retrain (drift, quality, age)
    annotations: str | None = None  # a span of annotated rows: the audited model's agreement

    @property
    def drifted_features(self) -> list[str]:
        return [d.feature for d in self.drift if d.drifted]

    @property
    def retrain(self) -> bool:
        return self.decision in (RETRAIN, FIRST_MODEL, NEW_SPAN)

    def to_json(self) -> dict:
        data = asdict(self)
        data["drift"] = [{**asdict(d), "drifted": d.drifted} for d in self.drift]
        data["drifted_features"] = self.drifted_features
        for name in ("quality", "age"):
            if data[name] is not None:
                data[name]["retrain"] = getattr(self, name).retrain
        return data

    def summary(self) -> str:
        lines = [
            f"Drift check of span {self.span} for model '{self.model}' at {self.checked_at}",
            f"  rows: {self.rows} in {len(self.files)} file(s)",
            f"  production model: version {self.production_version or 'none'}"
            + (f", trained on spans {self.production_spans}" if self.production_spans else ""),
            f"  decision: {self.decision}: {self.reason}",
        ]
        lines += [check.summary() for check in (self.quality, self.age) if check is not None]
        for column, problem in self.schema_anomalies.items():
            lines.append(f"  ANOMALY {column}: {problem}")
        for column, unseen in self.unseen_categories.items():
            shown = ", ".join(repr(value) for value in unseen[:5])
            lines.append(
                f"  WARNING {column}: {len(unseen)} value(s) never seen in training ({shown}); "
                "the model maps them to its out-of-vocabulary bucket"
            )
        for d in sorted(self.drift, key=lambda d: d.value / d.limit, reverse=True):
            flag = "DRIFT" if d.drifted else "ok   "
            lines.append(
                f"  {flag} {d.feature:24s} {d.measure:26s} {d.value:.4f} (threshold {d.threshold:g}"
                + ("" if d.noise_floor is None else f", noise floor {d.noise_floor:.4f}")
                + ")"
            )
        return "\n".join(lines)


def monitoring_schema(schema: schema_pb2.Schema, spec: ProblemSpec) -> schema_pb2.Schema:
    """The production schema with drift comparators on every feature the model uses.

    Integer categorical features are marked categorical so TFDV builds their value histograms.
    """
    copy = schema_pb2.Schema()
    copy.CopyFrom(schema)
    kinds = feature_kinds(copy, spec)
    for feature in copy.feature:
        kind = kinds.get(feature.name)
        if kind is None:
            continue
        threshold = spec.drift.features.get(feature.name)
        if kind == FeatureKind.CATEGORICAL:
            if feature.type == schema_pb2.INT:
                feature.int_domain.is_categorical = True
            feature.drift_comparator.infinity_norm.threshold = threshold or spec.drift.categorical_linf
        else:
            divergence = feature.drift_comparator.jensen_shannon_divergence
            divergence.threshold = threshold or spec.drift.numeric_jsd
            # Quantile buckets: equal-width ones are stretched by outliers (a 1,710-mile taxi trip)
            # and then report drift between two random samples of the same data.
            divergence.source.type = schema_pb2.HistogramSelection.QUANTILES
    return copy


def feature_kinds(schema: schema_pb2.Schema, spec: ProblemSpec) -> dict[str, FeatureKind]:
    types = {f.name: f.type for f in schema.feature}
    kinds = {}
    for name, kind in spec.feature_columns(list(types)).items():
        if kind == FeatureKind.AUTO:
            kind = FeatureKind.CATEGORICAL if types.get(name) == schema_pb2.BYTES else FeatureKind.NUMERIC
        kinds[name] = kind
    return kinds


def unseen_categories(
    stats: statistics_pb2.DatasetFeatureStatisticsList, transform_uri: str, kinds: dict[str, FeatureKind]
) -> dict[str, list[str]]:
    """Text categories of the span that the production model's vocabularies do not hold.

    Not an anomaly (the model has out-of-vocabulary buckets for them) but worth a warning: many of
    them mean the model knows less about the new data than its metrics suggest. Values come from
    TFDV's rank histogram (the most frequent values) of every feature the statistics hold as text.
    """
    import tensorflow_transform as tft

    from components.modules.preprocessing_fn import vocabulary_name

    output = tft.TFTransformOutput(transform_uri)
    found = {}
    for feature in stats.datasets[0].features:
        name = feature.path.step[0] if feature.path.step else feature.name
        if kinds.get(name) != FeatureKind.CATEGORICAL or not feature.HasField("string_stats"):
            continue
        known = {
            value.decode("utf-8", "replace") for value in output.vocabulary_by_name(vocabulary_name(name))
        }
        seen = [bucket.label for bucket in feature.string_stats.rank_histogram.buckets]
        unseen = [value for value in seen if value and value not in known]
        if unseen:
            found[name] = unseen
    return found


def malformed_files(files: list[str], table_format: CsvFormat) -> list[str]:
    """What ExampleGen's strict check would refuse in each file (the file, the line, what to do)."""
    from components.checked_csv_example_gen.reader import BadCsvError, check_csv_file

    problems = []
    for path in files:
        try:
            check_csv_file(path, table_format)
        except BadCsvError as error:
            problems.append(str(error))
    return problems


def csv_statistics(
    files: list[str],
    table_format: CsvFormat,
    schema: schema_pb2.Schema,
    pipeline_args: list[str],
    examples_prefix: str | None = None,
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of CSV files, read and typed as ExampleGen reads and types them; with
    `examples_prefix`, the same pass also writes the rows as serialized tf.Examples to TFRecord files
    `<examples_prefix>-*` (what the quality check scores: one read of the span serves both)."""
    import tempfile

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_bsl.public import tfxio

    from components.checked_csv_example_gen.reader import CsvToExamples

    records = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["blueprint", "drift"])
    with tempfile.TemporaryDirectory() as folder:
        output = str(Path(folder) / "statistics.pb")
        with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
            serialized = (
                pipeline
                | "ReadCsv" >> CsvToExamples(files, table_format)
                | "Serialize" >> beam.Map(lambda example: example.SerializeToString(deterministic=True))
            )
            _ = (
                serialized
                | "ToRecordBatches" >> records.BeamSource()
                | "GenerateStatistics" >> tfdv.GenerateStatistics(tfdv.StatsOptions(schema=schema))
                | "WriteStatistics" >> tfdv.WriteStatisticsToBinaryFile(output)
            )
            if examples_prefix is not None:
                _ = serialized | "WriteExamples" >> beam.io.WriteToTFRecord(examples_prefix)
        return tfdv.load_stats_binary(output)


def in_process_statistics(
    files: list[str], table_format: CsvFormat, schema: schema_pb2.Schema, examples_prefix: str | None = None
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """`csv_statistics` without Beam: the same examples (`reader.examples_in_process`) through TFDV's
    in-memory generator; with `examples_prefix`, the examples are written to
    `<examples_prefix>-00000-of-00001`."""
    import tensorflow as tf

    from components.checked_csv_example_gen.reader import examples_in_process

    serialized = examples_in_process(files, table_format)
    if examples_prefix is not None:
        with tf.io.TFRecordWriter(f"{examples_prefix}-00000-of-00001") as writer:
            for record in serialized:
                writer.write(record)
    return examples_statistics(serialized, schema)


def examples_statistics(
    serialized: list[bytes], schema: schema_pb2.Schema
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of serialized tf.Examples held in memory: TFDV's in-memory generator (the one
    `drift_noise` and `tfdv.generate_statistics_from_dataframe` use), examples decoded as its Beam
    sources decode them (types from the data, not the schema)."""
    from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory
    from tfx_bsl.coders import example_coder

    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(serialized)
    return generate_statistics_in_memory(batch, tfdv.StatsOptions(schema=schema))


def in_process(beam: BeamSpec, files: list[str]) -> bool:
    """Whether data is read in the check's own process: Beam's default settings (its DirectRunner, in
    memory, in this process anyway) and files of at most `IN_PROCESS_BYTES` in all."""
    return beam == BeamSpec() and sum(Path(path).stat().st_size for path in files) <= IN_PROCESS_BYTES


def span_statistics(
    files: list[str],
    table_format: CsvFormat,
    schema: schema_pb2.Schema,
    beam: BeamSpec,
    pipeline_args: list[str],
    examples_prefix: str | None = None,
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """The span's statistics (and examples, for the quality check): on Beam as `beam` says, or in this
    process when `beam` is the default (Beam's DirectRunner, in memory, in this process anyway) and the
    span's files hold at most `IN_PROCESS_BYTES`. On a 15k-row taxi span Beam's per-stage and
    per-element costs were most of the check: 9.0 s on Beam, 2.6 s here (py-spy), the same statistics."""
    if in_process(beam, files):
        return in_process_statistics(files, table_format, schema, examples_prefix)
    return csv_statistics(files, table_format, schema, pipeline_args, examples_prefix)


def reference_statistics(
    production: results.ProductionModel,
    schema: schema_pb2.Schema,
    cache_dir: Path,
    beam: BeamSpec,
    pipeline_args: list[str],
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Statistics of the production model's training data (train split of its spans), cached per version;
    read in this process where the span is (`in_process`), else on Beam."""
    from apache_beam.options.pipeline_options import PipelineOptions

    cache = cache_dir / f"reference-{production.version}.pb"
    cached = read_cached_statistics(cache)
    if cached is not None:
        return cached
    from pipelines.workflow import drift_noise

    uris = [artifact.uri for artifact in production.training_examples]
    files = drift_noise.train_split_files(uris)
    if in_process(beam, files):
        stats = examples_statistics([r for path in files for r in drift_noise.tfrecords(path)], schema)
    else:
        stats = tfdv.generate_statistics_from_tfrecord(
            data_location=[str(Path(uri, "Split-train", "*")) for uri in uris],
            stats_options=tfdv.StatsOptions(schema=schema),
            pipeline_options=PipelineOptions(pipeline_args),
        )
    replace_file(cache, stats.SerializeToString())
    return stats


def read_cached_statistics(path: Path) -> statistics_pb2.DatasetFeatureStatisticsList | None:
    """Statistics cached at `path`; None when absent or unreadable (a file cut short by an older,
    non-atomic write): the caller computes them again."""
    if not path.exists():
        return None
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    try:
        stats.ParseFromString(path.read_bytes())
    except DecodeError:
        logging.warning("Cached statistics %s are unreadable; computing them again", path)
        return None
    return stats if stats.datasets else None


def schema_problems(anomalies: anomalies_pb2.Anomalies) -> dict[str, str]:
    problems = {
        name: info.description or info.short_description for name, info in anomalies.anomaly_info.items()
    }
    if anomalies.HasField("dataset_anomaly_info"):
        problems["(dataset)"] = anomalies.dataset_anomaly_info.description
    return problems


def drift_measurements(
    anomalies: anomalies_pb2.Anomalies, kinds: dict[str, FeatureKind]
) -> list[FeatureDrift]:
    found = []
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for measurement in info.drift_measurements:
            found.append(
                FeatureDrift(
                    feature=name,
                    kind=kinds.get(name, FeatureKind.NUMERIC).value,
                    measure=_DRIFT_MEASURES.get(measurement.type, "unknown"),
                    value=round(float(measurement.value), 6),
                    threshold=float(measurement.threshold),
                )
            )
    return sorted(found, key=lambda d: d.feature)


def add_noise_floors(
    report: DriftReport,
    production: results.ProductionModel,
    reference: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    cache_dir: Path,
) -> None:
    """Gives each measured feature the drift that random samples of the reference, of the span's size,
    reach by chance (`drift_noise`): a small span drifts only beyond its threshold and that floor."""
    from pipelines.workflow import drift_noise

    uris = [artifact.uri for artifact in production.training_examples]
    floors = drift_noise.noise_floors(uris, reference, schema, report.rows, cache_dir)
    for drift in report.drift:
        drift.noise_floor = floors.get(drift.feature)


def check_span(spec: ProblemSpec, paths: RunPaths, span: int, beam_profile: str | None = None) -> DriftReport:
    """Checks one landed span; writes its report; raises BadSpanError (after writing) on bad data. Its
    statistics run on Beam where the spec's `beam` section, or `beam_profile`, says; with Beam's defaults,
    a span of at most `IN_PROCESS_BYTES` is read in this process (`span_statistics`)."""
    from pipelines.paths import pipeline_name

    files = landing.landed_spans(spec).get(span)
    if files is None:
        raise landing.LandingError(f"span {span} has not landed under '{landing.landing_folder(spec)}'")
    checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report = DriftReport(spec.name, span, checked_at, files, rows=0, decision=NO_DRIFT, reason="")
    if not files:
        report.decision, report.reason = (
            BAD_DATA,
            f"span folder '{landing.span_folder(spec, span)}' holds no files",
        )
        report.schema_anomalies["(span)"] = report.reason
        return _finish(report, paths)
    production = results.production_model(results.open_store(paths.metadata_config()), pipeline_name(spec))
    if production is None:
        report.decision, report.reason = FIRST_MODEL, "no model is in production yet: train the first one"
        return _finish(report, paths)
    report.production_version, report.production_spans = production.version, production.spans
    schema = monitoring_schema(
        io_utils.SchemaReader().read(str(Path(production.schema_uri) / "schema.pbtxt")), spec
    )
    file_problems = malformed_files(files, spec.data.csv_format)
    if file_problems:
        report.decision, report.reason = BAD_DATA, "; ".join(file_problems)
        report.schema_anomalies["(file)"] = report.reason
        return _finish(report, paths)
    paths.monitoring_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".span-examples-", dir=paths.monitoring_dir) as examples:
        return _checked(spec, paths, report, production, schema, beam_profile, examples)


def _checked(
    spec: ProblemSpec,
    paths: RunPaths,
    report: DriftReport,
    production: results.ProductionModel,
    schema: schema_pb2.Schema,
    beam_profile: str | None,
    examples_folder: str,
) -> DriftReport:
    """The checks of a well-formed span: its statistics against the schema and the reference (drift),
    the model in service on its labels (quality, on the span's examples in `examples_folder`), its age."""
    span, files, examples = report.span, report.files, str(Path(examples_folder) / "examples")
    pipeline_args = beam_args(spec, beam_profile)
    beam = beam_settings(spec, beam_profile)
    stats = span_statistics(files, spec.data.csv_format, schema, beam, pipeline_args, examples)
    report.rows = int(stats.datasets[0].num_examples)
    report.schema_anomalies = schema_problems(tfdv.validate_statistics(stats, _without_comparators(schema)))
    if report.schema_anomalies:
        report.decision = BAD_DATA
        report.reason = "the span breaks the production schema: " + "; ".join(
            f"{column}: {problem}" for column, problem in report.schema_anomalies.items()
        )
        return _finish(report, paths)
    annotated = annotations.read_record(paths.monitoring_dir, span)
    if annotated is not None:
        return _finish(_annotated_span(report, annotated), paths)
    reference = reference_statistics(
        production, schema, paths.monitoring_dir / "reference", beam, pipeline_args
    )
    drift = tfdv.validate_statistics(stats, schema, previous_statistics=reference)
    kinds = feature_kinds(schema, spec)
    report.drift = drift_measurements(drift, kinds)
    add_noise_floors(report, production, reference, schema, paths.monitoring_dir / "reference")
    report.unseen_categories = unseen_categories(stats, production.transform_uri, kinds)
    report.quality = quality.check_quality(spec, paths, span, f"{examples}-*", production)
    report.age = quality.check_age(spec, paths)
    return _finish(_decide(spec, report), paths)


def _annotated_span(report: DriftReport, record: dict) -> DriftReport:
    """A span of annotated rows (`pipelines land --annotations`) is ingested for the next training window;
    its drift and quality are not judged: its rows were chosen (the hardest on purpose), not drawn from
    the data in the wild. The audited model's agreement with the annotators is its figure."""
    report.annotations = annotations.describe(record)
    report.reason = f"annotated rows, ingested for the next training window ({report.annotations})"
    return report


def _decide(spec: ProblemSpec, report: DriftReport) -> DriftReport:
    """Retrain when a feature drifted, the model in service scores worse on the span's labels than
    allowed, or it is too old: every reason is listed. Else ingest only (or retrain on every new span)."""
    if report.drifted_features:
        drifted = [d for d in report.drift if d.drifted]
        report.reasons.append(
            "drift over threshold in "
            + ", ".join(f"{d.feature} ({d.measure} {d.value:.3f} > {_limits(d)})" for d in drifted)
        )
    report.reasons += [check.reason for check in (report.quality, report.age) if check and check.retrain]
    if report.reasons:
        report.decision, report.reason = RETRAIN, "; ".join(report.reasons)
    elif spec.retrain.on_new_span:
        report.decision = NEW_SPAN
        report.reason = f"new span {report.span} landed (no drift; the spec retrains on every new span)"
    else:
        report.reason = "no feature drifted past its threshold and its noise floor"
        if report.quality is not None and report.quality.decision == quality.KEEP:
            report.reason += (
                f"; {report.quality.metric} on the span not significantly worse than retrain.quality_drop"
            )
    return report


def _limits(drift: FeatureDrift) -> str:
    noise = "" if drift.noise_floor is None else f" and noise floor {drift.noise_floor:.3f}"
    return f"threshold {drift.threshold:g}{noise}"


def _without_comparators(schema: schema_pb2.Schema) -> schema_pb2.Schema:
    copy = schema_pb2.Schema()
    copy.CopyFrom(schema)
    for feature in copy.feature:
        feature.ClearField("drift_comparator")
    return copy


def _finish(report: DriftReport, paths: RunPaths) -> DriftReport:
    write_report(report, paths.monitoring_dir)
    if report.decision == BAD_DATA:
        raise BadSpanError(
            f"span {report.span} of '{report.model}' is bad data, nothing retrains: {report.reason}"
        )
    return report


def write_report(report: DriftReport, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"span-{report.span:04d}-{time.time_ns() // 1_000_000}"
    path = folder / f"{stem}.json"
    replace_file(path, json.dumps(report.to_json(), indent=1))
    replace_file(folder / f"{stem}.txt", report.summary() + "\n")
    return path


def reports(folder: Path, span: int | None = None) -> list[dict]:
    """Every report written so far (oldest first), optionally for one span."""
    pattern = f"span-{span:04d}-*.json" if span is not None else "span-*.json"
    found = []
    for path in sorted(folder.glob(pattern)):
        try:
            found.append(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError):
            logging.warning("Drift report %s is unreadable (cut short?); it is left out", path)
    return found


def spans_to_check(spec: ProblemSpec, paths: RunPaths) -> list[int]:
    """Every landed span that has no report yet, oldest first: spans that land between two polls are all
    checked, in order. A span with a report (bad data included) is not checked again: spans are never
    overwritten, so a corrected file lands as a new span (`pipelines check --span N` re-checks one by hand).
    """
    checked = {report.get("span") for report in reports(paths.monitoring_dir)}
    return [span for span in landing.landed_spans(spec) if span not in checked]


def passed_check(paths: RunPaths, span: int) -> bool:
    """Whether a check of `span` let it through (any decision but bad data)."""
    return any(report["decision"] != BAD_DATA for report in reports(paths.monitoring_dir, span))


def newest_checked_span(spec: ProblemSpec, paths: RunPaths) -> int | None:
    """The newest landed span that passed a check (what a training run without a span ingests)."""
    passed = [span for span in landing.landed_spans(spec) if passed_check(paths, span)]
    return passed[-1] if passed else None
