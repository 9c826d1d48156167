"""Serving benchmark: every pushed target of the model in service, each in its own runtime.

    python -m bench.serving --config config/taxi.yaml [--home build] [--calls 500] [--repeats 5]

For each target (SavedModel in TensorFlow, TFLite float32/dynamic/int8 in the interpreter with builtin
ops, TF.js in Node): file size, p50 and p99 single-example latency, batch-256 throughput over the test
split, and the spec's metric on the test split. Prints a markdown table and one JSON line. Run it after
`make demo`; it reads the version in service from MLMD and serving/<model>/current.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow_transform as tft
from tfx.types import standard_artifacts

from components.core import models_config
from components.core.models_config import target_name
from components.core.spec import load_spec
from components.scoring import parity, runtimes
from pipelines.paths import DEFAULT_HOME, RunPaths
from pipelines.workflow import results, training


def tfx_examples(mlmd_artifacts) -> list:
    """MLMD Examples artifacts as TFX ones (what the split readers take)."""
    examples = []
    for mlmd_artifact in mlmd_artifacts:
        artifact = standard_artifacts.Examples()
        artifact.set_mlmd_artifact(mlmd_artifact)
        examples.append(artifact)
    return examples


def best_of(repeats: int, measure) -> float:
    """The fastest of `repeats` timings (seconds): the least disturbed by the shared machine."""
    return min(measure() for _ in range(repeats))


def measure_target(target: dict, version_dir: Path, inputs, labels, spec, calls: int, repeats: int) -> dict:
    rows = len(labels)
    path = version_dir / target["path"]
    if target["target"] == "tfjs":
        runtime = runtimes.TfjsNodeRuntime(path)
        predictions, timings, predict_ms = runtime.run_timed(inputs, calls)
        batch_seconds = min(
            [predict_ms / 1000] + [runtime.run_timed(inputs, 0)[2] / 1000 for _ in range(repeats - 1)]
        )
    else:
        runtime = (
            runtimes.TensorFlowRuntime(str(version_dir))
            if target["target"] == "serving"
            else runtimes.TFLiteRuntime(path)
        )
        predictions = runtime.predict(inputs)
        timings = runtime.latency_ms(inputs, calls)

        def predict_all() -> float:
            started = time.perf_counter()
            runtime.predict(inputs)
            return time.perf_counter() - started

        batch_seconds = best_of(repeats, predict_all)
    return {
        "target": target_name(target),
        "runtime": runtime.name,
        "size_bytes": target["size_bytes"],
        "p50_ms": float(np.percentile(timings, 50)),
        "p99_ms": float(np.percentile(timings, 99)),
        "batch256_rows_per_s": rows / batch_seconds,
        "metric": parity.metric_value(spec, labels, predictions.reshape(len(labels), -1)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="config/taxi.yaml")
    parser.add_argument("--home", default=str(DEFAULT_HOME))
    parser.add_argument("--calls", type=int, default=500, help="single-example calls timed per target")
    parser.add_argument("--repeats", type=int, default=5, help="batch timings per target (the best is kept)")
    args = parser.parse_args(argv)
    spec = load_spec(args.config, check_data=False)
    paths = RunPaths.for_spec(spec.name, args.home)
    current = models_config.read_current(paths.serving_dir.parent, paths.serving_dir.name)
    production = results.production_model(
        results.open_store(paths.metadata_config()), training.pipeline_name(spec)
    )
    if not current or production is None:
        print(f"No model in service under {paths.serving_dir}; run `make demo` first.", file=sys.stderr)
        return 1
    version_dir = paths.serving_dir / str(current["version"])
    tft_output = tft.TFTransformOutput(production.transform_uri)
    reference = runtimes.TensorFlowRuntime(str(version_dir))
    examples = tfx_examples(production.training_examples)
    serialized = parity.read_serialized(parity.split_records(examples, parity.TEST_SPLIT))
    inputs, parsed = parity.raw_inputs(serialized, tft_output, reference.input_dtypes())
    labels = parity.labels(parsed, tft_output, spec)
    figures = [
        measure_target(t, version_dir, inputs, labels, spec, args.calls, args.repeats)
        for t in current["manifest"]["targets"]
        if t.get("pushed")
    ]
    print(f"Serving: '{spec.name}' version {current['version']}, {len(labels)} test rows, {args.calls} calls")
    print()
    print(f"| target | runtime | size | p50 ms | p99 ms | batch-256 rows/s | test {spec.metric.name} |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for f in figures:
        print(
            f"| {f['target']} | {f['runtime']} | {f['size_bytes'] / 1e3:.1f} kB | {f['p50_ms']:.3f} | "
            f"{f['p99_ms']:.3f} | {f['batch256_rows_per_s']:,.0f} | {f['metric']:.4f} |"
        )
    print()
    print(
        json.dumps(
            {"bench": "serving", "version": current["version"], "test_rows": len(labels), "targets": figures}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
