"""Column scaling: the same 1,797 rows with 8, 64 and 256 numeric columns, so the per-column cost shows.

    python -m bench.columns [--columns 8 64 256] [--runs 3] [--home build/bench/columns]

scikit-learn's digits table (ships offline: 1,797 handwritten digits, 64 pixel columns of 0..16, the digit
as a multiclass label written as the data writes it, 0..9). 8 columns are the 8 pixels of largest
variance (in the table's order), 64 all the pixels, 256 the 64 pixels and 3 copies of each under new names
(`pixel_3_4_copy1`) with seeded noise N(0, 0.25) added: what is measured is the cost of the columns, not
the accuracy they buy. Any width up to 64 is a slice the same way, and a multiple of 64 adds copies.

For each width a CSV and a spec go into the bench home (every column named numeric, tuning off, an
accuracy threshold every width passes, so the model is blessed and exported; the device targets the
default spec builds, TFLite float32 and int8 and TF.js float32 and uint8 among them), and the pipeline
runs once as a whole `python -m pipelines run` process in a fresh home, measured by
`bench.scaling.Measured` (per-component seconds, peak memory of the process tree); with `--runs N` the
widths run N rounds, interleaved so the machine's drift falls on every width alike, and the table shows
medians. The device models' sizes are the ModelExporter's `targets.json` of that run (kB = 1000 bytes).
Prints a markdown table and one JSON line.
Targets (issue 24): Transform at 64 columns takes at most 1.5 times Transform at 8; the 64-column int8
TFLite model is at most half the float32 one.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import yaml

from bench.scaling import GIB, Measured
from components.core.artifacts import DEVICE_MODELS_KEY, read_targets
from components.core.models_config import target_name
from components.core.spec import DeploymentSpec, load_spec
from pipelines.paths import RunPaths, pipeline_name

PIXELS = 64
LABEL = "digit"
NOISE = 0.25  # sd of the noise added to the copies, in pixel units (the pixels run 0..16)
THRESHOLD = 0.3  # accuracy the model must reach to be blessed (and its device models exported): 10 classes
# The targets the table shows; the spec builds them and whatever else the default spec builds.
TABLE_TARGETS = ("tflite-float32", "tflite-int8", "tfjs-float32", "tfjs-uint8")


def digits_columns(width: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`width` numeric columns of the digits table (name -> values) and the label."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.data.astype(int)
    names = list(digits.feature_names)
    if 0 < width <= PIXELS:
        chosen = sorted(np.argsort(-pixels.var(axis=0), kind="stable")[:width])
        return {names[i]: pixels[:, i] for i in chosen}, digits.target
    if width % PIXELS:
        raise SystemExit(f"--columns {width}: use a width up to {PIXELS} or a multiple of {PIXELS}")
    columns: dict[str, np.ndarray] = {name: pixels[:, i] for i, name in enumerate(names)}
    for copy in range(1, width // PIXELS):
        noise = np.random.default_rng(copy).normal(0, NOISE, pixels.shape)
        for i, name in enumerate(names):
            columns[f"{name}_copy{copy}"] = np.round(pixels[:, i] + noise[:, i], 2)
    return columns, digits.target


def write_table(path: Path, width: int) -> list[str]:
    """The digits table with `width` numeric columns and the label as a CSV; returns the feature names."""
    columns, label = digits_columns(width)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, LABEL])
        writer.writerows(zip(*(values.tolist() for values in columns.values()), label.tolist(), strict=True))
    return list(columns)


def bench_spec(folder: Path, source: Path, features: list[str]) -> Path:
    default = DeploymentSpec()
    wanted = [name.split("-", 1) for name in TABLE_TARGETS]
    raw = {
        "name": f"digits-{len(features)}",
        "description": f"Which digit is written: {len(features)} numeric pixel columns (bench.columns).",
        "data": {"source": str(source.resolve())},
        "label": LABEL,
        "task": "multiclass",
        "features": {name: "numeric" for name in features},
        "metric": {"name": "accuracy", "threshold": THRESHOLD},
        "tuning": False,
        "deployment": {
            "tflite": list(dict.fromkeys([*default.tflite, *(v for t, v in wanted if t == "tflite")])),
            "tfjs": list(dict.fromkeys([*default.tfjs, *(v for t, v in wanted if t == "tfjs")])),
        },
    }
    path = folder / f"digits-{len(features)}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def exported_targets(config: Path, home: Path) -> dict[str, dict]:
    """Each target the run's ModelExporter built: size, test metric and whether it passed its checks."""
    from pipelines.workflow import results  # imports TensorFlow: not while a run is being measured

    spec = load_spec(config)
    summary = results.latest_run(RunPaths.for_spec(spec.name, home).metadata_config(), pipeline_name(spec))
    uris = summary.outputs.get("ModelExporter", {}).get(DEVICE_MODELS_KEY) if summary else None
    if not uris:
        raise SystemExit(f"{config.name}: the run recorded no ModelExporter output")
    targets = read_targets(uris[0])
    if not targets.get("exported"):
        raise SystemExit(f"{config.name}: nothing was exported: {targets.get('reason')}")
    return {
        target_name(t): {"size_bytes": t["size_bytes"], "metric": t["metric"], "passed": t["passed"]}
        for t in targets["targets"]
    }


def run_width(folder: Path, width: int) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    features = write_table(folder / "data" / "digits.csv", width)
    config = bench_spec(folder, folder / "data" / "digits.csv", features)
    measured = Measured(config, folder / "home")
    if measured.returncode != 0:
        raise SystemExit(f"the {width}-column run failed:\n" + "\n".join(measured.lines[-40:]))
    return {
        "columns": width,
        "seconds": measured.total_seconds,
        "transform_seconds": measured.seconds.get("Transform"),
        "peak_bytes": measured.run_peak,
        "targets": exported_targets(config, folder / "home"),
        "components": {
            node: {"seconds": measured.seconds[node], "peak_bytes": measured.peak.get(node, 0)}
            for node in measured.seconds
        },
    }


def print_table(widths: list[dict]) -> None:
    base = widths[0]
    print("Column scaling: the digits table's 1,797 rows (no tuning; whole process, imports included)")
    print()
    print(
        f"| columns | Transform s | Transform / {base['columns']}-col | whole run s | peak memory GB "
        "| TFLite float32 kB | TFLite int8 kB | int8/float32 | TF.js float32 kB | TF.js uint8 kB |"
    )
    print("| ---: |" + " ---: |" * 9)
    for width in widths:
        kb = {name: width["targets"][name]["size_bytes"] / 1000 for name in TABLE_TARGETS}
        print(
            f"| {width['columns']} | {width['transform_seconds']:.1f} "
            f"| {width['transform_seconds'] / base['transform_seconds']:.2f} | {width['seconds']:.1f} "
            f"| {width['peak_bytes'] / GIB:.2f} | {kb['tflite-float32']:.1f} | {kb['tflite-int8']:.1f} "
            f"| {kb['tflite-int8'] / kb['tflite-float32']:.2f} | {kb['tfjs-float32']:.1f} "
            f"| {kb['tfjs-uint8']:.1f} |"
        )
    print()
    by = {width["columns"]: width for width in widths}
    if 8 in by and 64 in by:
        ratio = by[64]["transform_seconds"] / by[8]["transform_seconds"]
        each = [
            f"{wide['transform_seconds'] / narrow['transform_seconds']:.2f}"
            for narrow, wide in zip(by[8]["rounds"], by[64]["rounds"], strict=True)
        ]
        rounds = f" (each round: {', '.join(each)})" if len(each) > 1 else ""
        print(f"Transform at 64 columns / at 8 = {ratio:.2f}{rounds} (target <= 1.5)")
    if 64 in by:
        sizes = by[64]["targets"]
        ratio = sizes["tflite-int8"]["size_bytes"] / sizes["tflite-float32"]["size_bytes"]
        print(f"64 columns: TFLite int8 / float32 = {ratio:.2f} (target <= 0.5)")
    refused = [
        f"{width['columns']} columns: {name}"
        for width in widths
        for name, target in width["targets"].items()
        if not target["passed"]
    ]
    if refused:
        print("Not pushed (a parity or compute check failed; sized all the same): " + ", ".join(refused))


def median_of_rounds(rounds: list[dict]) -> dict:
    """One width's rounds as one row: median whole-run and Transform seconds, the largest peak, the
    last round's targets (their sizes do not change between rounds), and every round's Transform time."""
    return {
        **rounds[-1],
        "seconds": statistics.median(r["seconds"] for r in rounds),
        "transform_seconds": statistics.median(r["transform_seconds"] for r in rounds),
        "peak_bytes": max(r["peak_bytes"] for r in rounds),
        "rounds": [{"seconds": r["seconds"], "transform_seconds": r["transform_seconds"]} for r in rounds],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--columns", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument(
        "--runs", type=int, default=1, help="rounds over every width, interleaved; the table shows medians"
    )
    parser.add_argument("--home", default="build/bench/columns")
    args = parser.parse_args(argv)
    root = Path(args.home).resolve()
    rounds: dict[int, list[dict]] = {width: [] for width in sorted(args.columns)}
    for round_number in range(1, args.runs + 1):
        for width in rounds:
            print(f"round {round_number}: running {width} columns ...", file=sys.stderr, flush=True)
            done = run_width(root / f"{width}-columns", width)
            rounds[width].append(done)
            print(
                f"  {width} columns: {done['seconds']:.1f} s, Transform {done['transform_seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            widths = [median_of_rounds(runs) for runs in rounds.values() if runs]
            (root / "columns.json").write_text(json.dumps({"bench": "columns", "widths": widths}, indent=1))
    print_table(widths)
    print(json.dumps({"bench": "columns", "widths": widths}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
