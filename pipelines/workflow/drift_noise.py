"""How far a span of N rows drifts by sampling noise alone: each feature's noise floor.

TFDV's drift measures (L-infinity distance for categorical features, Jensen-Shannon divergence for
numeric ones) compare two histograms and ignore how many rows made them: of new spans drawn from the very
distribution a model was trained on (2,000 taxi trips), 97.5% of 150-trip spans and 38% of 1,200-trip
spans passed a 0.1 threshold in some feature (`python -m bench.drift_noise`), and retrained on noise.

So TFDV also measures the drift of `DRAWS` random samples of the reference rows (with replacement) from
the reference statistics, as it measures the span's, and a feature drifts only beyond both its threshold
and its noise floor. A span and the reference are two samples, so the samples hold n x N / (n + N) rows
(the noise of both). The floors hold for the span as a whole, not feature by feature (with 14 features
each at its own 95th percentile, far more than 1 span in 20 would drift): each feature's scale is the 90th
percentile of its measures, one factor for every feature is the 95th percentile, over the draws, of the
largest measure / scale, and floor = factor x scale. With them, 6% and 8% of those spans drifted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components.core.files import replace_file

SPAN_QUANTILE = 0.95  # a same-distribution span drifts in no feature 19 times in 20
SCALE_QUANTILE = 0.9
DRAWS = 40
MAX_REFERENCE_ROWS = 100_000  # rows read from the reference's train split
MAX_SAMPLE_ROWS = 5_000  # a bigger span gets the floor of this many rows: a little high, and cheap


def noise_floors(
    reference_examples: list[str],
    reference: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    rows: int,
    cache: Path | None = None,
) -> dict[str, float]:
    """Each feature's noise floor for a span of `rows` rows against `reference` (the statistics of the
    train split under `reference_examples`, Examples artifact folders); `schema` holds the drift
    comparators. Cached in `cache`, a folder, per reference, schema and size."""
    size = sample_size(rows, int(reference.datasets[0].num_examples))
    cached = _cache_file(cache, reference_examples, schema, size)
    if cached is not None and cached.is_file():
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):  # unreadable: computed again
            return json.loads(cached.read_text())
    batch = reference_rows(reference_examples)
    floors = floors_of(sample_drift(batch, reference, schema, size))
    if cached is not None:
        replace_file(cached, json.dumps(floors, indent=1, sort_keys=True))
    return floors


def sample_size(span_rows: int, reference_rows: int) -> int:
    """The size of the reference samples whose noise matches a span's: a span and the reference are two
    samples, so their drift carries the noise of both, that of one sample of n x N / (n + N) rows."""
    effective = span_rows * reference_rows / (span_rows + reference_rows) if reference_rows else span_rows
    return max(1, min(round(effective), MAX_SAMPLE_ROWS))


def reference_rows(reference_examples: list[str], limit: int = MAX_REFERENCE_ROWS) -> pa.RecordBatch:
    """Up to `limit` rows of the train split of the Examples folders, spread evenly over their files."""
    from tfx_bsl.coders import example_coder

    files = train_split_files(reference_examples)
    if not files:
        raise FileNotFoundError(f"no train split under {', '.join(reference_examples)}")
    per_file = math.ceil(limit / len(files))
    records = [record for path in files for record in tfrecords(path, per_file)]
    return example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records[:limit])


def train_split_files(reference_examples: list[str]) -> list[str]:
    """The TFRecord files of the train split of Examples folders (ExampleGen's `Split-train`)."""
    return sorted(str(path) for uri in reference_examples for path in Path(uri, "Split-train").glob("*"))


def tfrecords(path: str, limit: int = -1) -> list[bytes]:
    """The first `limit` records of a TFRecord file, gzipped (ExampleGen's `.gz`) or not; all with -1."""
    import tensorflow as tf

    compression = "GZIP" if path.endswith(".gz") else ""
    return [record.numpy() for record in tf.data.TFRecordDataset(path, compression).take(limit)]


def sample_drift(
    batch: pa.RecordBatch,
    reference: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    size: int,
    draws: int = DRAWS,
) -> list[dict[str, float]]:
    """TFDV's drift measure of each feature, for each of `draws` random samples of `size` rows of `batch`."""
    from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory

    compared = [f.name for f in schema.feature if f.HasField("drift_comparator")]
    kept = [name for name in batch.schema.names if name in compared]
    batch = pa.RecordBatch.from_arrays([batch.column(name) for name in kept], kept)
    options = tfdv.StatsOptions(schema=schema, feature_allowlist=compared)  # only what drift reads
    random = np.random.default_rng(size)  # the same span size gets the same samples
    found = []
    for _ in range(draws):
        sample = batch.take(pa.array(random.integers(0, batch.num_rows, size)))
        stats = generate_statistics_in_memory(sample, options)
        found.append(drift_values(tfdv.validate_statistics(stats, schema, previous_statistics=reference)))
    return found


def floors_of(draws: list[dict[str, float]]) -> dict[str, float]:
    """Each feature's floor from its measure in each draw: its scale x one factor for the span."""
    features = sorted({feature for draw in draws for feature in draw})
    if not features:
        return {}
    table = np.array([[draw.get(feature, 0.0) for draw in draws] for feature in features])
    scales = np.quantile(table, SCALE_QUANTILE, axis=1)
    ratios = np.divide(table, scales[:, None], out=np.zeros_like(table), where=scales[:, None] > 0)
    factor = float(np.quantile(ratios.max(axis=0), SPAN_QUANTILE))
    return {feature: round(factor * float(scale), 6) for feature, scale in zip(features, scales, strict=True)}


def drift_values(anomalies: anomalies_pb2.Anomalies) -> dict[str, float]:
    """Each feature's drift measure in TFDV's anomalies (the largest, should one have several)."""
    values: dict[str, float] = {}
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for measurement in info.drift_measurements:
            values[name] = max(values.get(name, 0.0), float(measurement.value))
    return values


def _cache_file(
    folder: Path | None, reference_examples: list[str], schema: schema_pb2.Schema, size: int
) -> Path | None:
    if folder is None:
        return None
    key = hashlib.sha256()
    for uri in sorted(reference_examples):
        key.update(uri.encode())
    key.update(schema.SerializeToString(deterministic=True))
    return folder / f"noise-{key.hexdigest()[:16]}-{size}.json"
