"""Drift on sampling noise alone: how often a same-distribution span "drifts", by the spec's thresholds
alone and with the noise floors of `pipelines/workflow/drift_noise.py`.

    python -m bench.drift_noise [--reference 2000] [--spans 200] [--sizes 150 200 1200]

The shipped taxi trips, shuffled: `--reference` of them are the training data (reference statistics,
schema and drift comparators as the drift check builds them from `config/taxi_replay.yaml`); spans of
each size are drawn from the other trips, so each is a new span from the very same distribution. TFDV
measures each span's drift; a span counts as drifted when any feature passes its threshold (the old
rule) or its threshold and noise floor (the rule now). Prints a markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random

import numpy as np
import pyarrow as pa

from bench.taxi_data import taxi_rows
from components.core.spec import load_spec
from pipelines.settings import REPO_ROOT
from pipelines.workflow import drift_noise, monitoring

SPEC = REPO_ROOT / "config" / "taxi_replay.yaml"


def record_batch(rows: list[dict[str, str]], columns: list[str]) -> pa.RecordBatch:
    """The rows as TFDV reads tf.Examples: one list per cell, integers, floats or text; empty is missing."""
    arrays = []
    for column in columns:
        cells = [row[column] for row in rows]
        arrays.append(pa.array([[value] if value != "" else None for value in typed(cells)]))
    return pa.RecordBatch.from_arrays(arrays, columns)


def typed(cells: list[str]) -> list:
    for kind in (int, float):
        try:
            return [kind(cell) if cell != "" else "" for cell in cells]
        except ValueError:
            continue
    return [cell.encode() if cell != "" else "" for cell in cells]


def share_drifted(spans: list[dict[str, float]], limits: dict[str, float]) -> float:
    return float(np.mean([any(value > limits[f] for f, value in span.items()) for span in spans]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=int, default=2000, help="trips in the training data")
    parser.add_argument("--spans", type=int, default=200, help="same-distribution spans of each size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 200, 1200])
    args = parser.parse_args(argv)
    table = measure(args.reference, args.spans, args.sizes)
    print(f"Same-distribution spans that drift ({args.reference:,} reference trips, {args.spans} per size)")
    print(
        "| span rows | drifted: threshold only | drifted: threshold and noise floor | floors over threshold |"
    )
    print("| ---: | ---: | ---: | --- |")
    for line in table:
        noisiest = line["noisiest"]
        print(
            f"| {line['rows']} | {line['drifted_by_threshold']:.1%} "
            f"| {line['drifted_by_threshold_and_floor']:.1%} | {line['floors_over_threshold']} of "
            f"{line['features']} (highest: {noisiest['feature']} {noisiest['floor']:.3f} vs "
            f"{noisiest['threshold']:g}) |"
        )
    print(json.dumps({"reference": args.reference, "sizes": table}))
    return 0


def measure(reference_size: int, span_count: int, sizes: list[int]) -> list[dict]:
    """For each span size: the share of same-distribution spans drifted by each rule, and the floors."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory

    spec = load_spec(SPEC, check_data=False)
    header, rows = taxi_rows()
    rows = random.Random(6).sample(rows, len(rows))
    columns = [c for c in header if c in spec.features or c in spec.label_columns]
    reference_rows, others = record_batch(rows[:reference_size], columns), rows[reference_size:]
    schema = monitoring.monitoring_schema(
        tfdv.infer_schema(generate_statistics_in_memory(reference_rows)), spec
    )
    options = tfdv.StatsOptions(schema=schema)
    reference = generate_statistics_in_memory(reference_rows, options)
    thresholds = {f.name: threshold_of(f) for f in schema.feature if f.HasField("drift_comparator")}
    draw = random.Random(7)
    table = []
    for size in sizes:
        spans = []
        for _ in range(span_count):
            stats = generate_statistics_in_memory(record_batch(draw.sample(others, size), columns), options)
            anomalies = tfdv.validate_statistics(stats, schema, previous_statistics=reference)
            spans.append(drift_noise.drift_values(anomalies))
        sampled = drift_noise.sample_size(size, reference_size)  # as `drift_noise.noise_floors` does
        floors = drift_noise.floors_of(drift_noise.sample_drift(reference_rows, reference, schema, sampled))
        limits = {f: max(t, floors.get(f, 0.0)) for f, t in thresholds.items()}
        noisiest = max(thresholds, key=lambda f: floors.get(f, 0.0) / thresholds[f])
        table.append(
            {
                "rows": size,
                "spans": span_count,
                "drifted_by_threshold": share_drifted(spans, thresholds),
                "drifted_by_threshold_and_floor": share_drifted(spans, limits),
                "floors_over_threshold": sum(floors.get(f, 0.0) > t for f, t in thresholds.items()),
                "features": len(thresholds),
                "noisiest": {
                    "feature": noisiest,
                    "floor": floors[noisiest],
                    "threshold": thresholds[noisiest],
                },
            }
        )
    return table


def threshold_of(feature) -> float:
    comparator = feature.drift_comparator
    return comparator.infinity_norm.threshold or comparator.jensen_shannon_divergence.threshold


if __name__ == "__main__":
    raise SystemExit(main())
