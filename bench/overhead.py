"""Pipeline overhead: the taxi training pipeline (no tuning) against the same model written by hand.

    python -m bench.overhead [--runs 3] [--home build/bench/overhead]

Both run as whole processes (imports included) on the same data: 10% of the taxi trips (seeded) are
held out; the pipeline (`config/taxi.yaml` without `tuning`, split 88/11/1 so it trains on as many rows as
the script) and `bench/handwritten_taxi.py` (pandas + tf_keras, same preprocessing, network and steps)
train on the rest. Each model's AUC is measured on the same held-out rows. Prints a markdown table
(medians of `--runs` runs each) and one JSON line. Target (issue 7): pipeline / hand-written <= 2.0,
and the pipeline's AUC not worse.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.scaling import Measured
from components.core.sources import resolve
from components.core.spec import load_spec
from pipelines.paths import RunPaths
from pipelines.settings import REPO_ROOT
from pipelines.workflow import results, scoring, training

HELD_OUT_SHARE = 0.1


def split_rows(source: Path, folder: Path) -> tuple[Path, Path, list[dict[str, str]]]:
    """Writes rest.csv and heldout.csv (cells copied as text, unchanged); returns the held-out rows."""
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    random.Random(0).shuffle(rows)
    cut = int(len(rows) * HELD_OUT_SHARE)
    paths = []
    for name, part in (("heldout.csv", rows[:cut]), ("rest.csv", rows[cut:])):
        path = folder / name
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(part)
        paths.append(path)
    return paths[1], paths[0], rows[:cut]


def bench_spec(folder: Path, rest: Path) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "config" / "taxi.yaml").read_text())
    raw["data"]["source"] = str(rest.resolve())
    raw["tuning"] = False
    raw["split"] = {"train": 0.88, "eval": 0.11, "test": 0.01}
    path = folder / "taxi-overhead.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def handwritten_run(rest: Path, heldout: Path, out: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.handwritten_taxi",
            "--train",
            str(rest),
            "--test",
            str(heldout),
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started, json.loads(out.read_text())


def pipeline_auc(config: Path, home: Path, heldout_rows: list[dict[str, str]]) -> float:
    spec = load_spec(config)
    paths = RunPaths.for_spec(spec.name, home)
    production = results.production_model(
        results.open_store(paths.metadata_config()), training.pipeline_name(spec)
    )
    if production is None:
        raise SystemExit("the pipeline pushed no model: nothing to score")
    return scoring.score_rows(spec, production, heldout_rows)


def print_breakdown(pipeline_runs: list[dict], handwritten_seconds: float) -> None:
    """Where the median pipeline run's time goes, each part as a share of the hand-written script."""
    run = sorted(pipeline_runs, key=lambda r: r["seconds"])[len(pipeline_runs) // 2]
    parts = sorted(run["components"].items(), key=lambda item: -item[1])
    outside = run["seconds"] - sum(seconds for _, seconds in parts)
    print()
    print("| where the pipeline's time goes | seconds | / hand-written run |")
    print("| --- | ---: | ---: |")
    for name, seconds in [("start-up (imports, compile, MLMD) and between components", outside), *parts]:
        if seconds >= 0.5:
            print(f"| {name} | {seconds:.1f} | {seconds / handwritten_seconds:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--home", default="build/bench/overhead")
    args = parser.parse_args(argv)
    folder = Path(args.home)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    taxi = Path(resolve("pkg://tfx/examples/chicago_taxi_pipeline/data/big_tipper_label/data.csv", REPO_ROOT))
    rest, heldout, heldout_rows = split_rows(taxi, folder)
    config = bench_spec(folder, rest)
    pipeline, handwritten = [], []
    for run in range(args.runs):
        home = folder / f"home-{run}"
        measured = Measured(config, home)
        if measured.returncode != 0:
            raise SystemExit("the pipeline run failed:\n" + "\n".join(measured.lines[-40:]))
        pipeline.append(
            {
                "seconds": measured.total_seconds,
                "auc": pipeline_auc(config, home, heldout_rows),
                "components": measured.seconds,
            }
        )
        seconds, result = handwritten_run(rest, heldout, folder / f"handwritten-{run}.json")
        handwritten.append({"seconds": seconds, "auc": result["auc"]})
        print(
            f"run {run + 1}: pipeline {pipeline[-1]['seconds']:.1f} s, hand-written {seconds:.1f} s",
            flush=True,
        )
    summary = {
        name: {
            "median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_auc": statistics.median(r["auc"] for r in runs),
            "runs": runs,
        }
        for name, runs in (("pipeline", pipeline), ("handwritten", handwritten))
    }
    ratio = summary["pipeline"]["median_seconds"] / summary["handwritten"]["median_seconds"]
    print()
    print(f"Overhead: taxi, {len(heldout_rows)} held-out rows, median of {args.runs} whole-process runs each")
    print()
    print("| | median wall time | median AUC (held-out rows) |")
    print("| --- | ---: | ---: |")
    for name, label in (
        ("pipeline", "pipeline (no tuning)"),
        ("handwritten", "hand-written pandas + tf_keras"),
    ):
        print(f"| {label} | {summary[name]['median_seconds']:.1f} s | {summary[name]['median_auc']:.4f} |")
    print()
    print(f"pipeline / hand-written = {ratio:.2f} (target <= 2.0; pipeline AUC not worse)")
    print_breakdown(pipeline, summary["handwritten"]["median_seconds"])
    print(json.dumps({"bench": "overhead", "ratio": ratio, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
