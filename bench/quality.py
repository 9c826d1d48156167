"""Model quality: the default five-line spec against gradient-boosted trees on the same test rows.

    python -m bench.quality [--home build/bench/quality] [--tables breast_cancer wine ...]
                            [--search bayesian random] [--seeds 3]

For each real table that ships offline (scikit-learn's breast cancer, wine and diabetes with their class
names, iris species as a string-labelled table, the Chicago taxi trips), a spec of five lines (name, data,
label, task, metric; tuning is on by default) runs the whole pipeline, and the DumbBaselineGate's
simple-model baseline (scikit-learn's HistGradientBoosting, default settings, fitted on the same training
rows and scored on the same test rows) gives the figure to compare with. No device targets are built: they
do not change the network's test metric and cost a minute per table. Prints a markdown table and one JSON
line. Target (issue 21): on every table the network within 3% (relative) of the trees or better; the
geometric mean of the ratios is reported.

Ratio = network / trees for a metric where higher is better (AUC, accuracy), trees / network for an error
(MAE): above 1 the network is better, 0.97 is 3% worse.

With several searches and `--seeds N` (tuning seeds 0..N-1) it compares the searches on one budget: per
table and seed, which search reached the better validation objective (what a search optimizes; the test
rows are few) and the test ratios, summed up per search.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from components.core.artifacts import BASELINE_BLESSING_KEY, read_power, read_protocol
from components.core.sources import resolve
from components.core.spec import load_spec
from pipelines.settings import REPO_ROOT

TAXI_DATA = "pkg://tfx/examples/chicago_taxi_pipeline/data/big_tipper_label/data.csv"
TARGET_RATIO = 0.97


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def _sklearn_table(folder: Path, loader: str, label: str, names: bool) -> Path:
    """A scikit-learn table as a CSV, the label written by class name when `names`."""
    from sklearn import datasets

    data = getattr(datasets, f"load_{loader}")()
    columns = {str(name).replace(" ", "_"): data.data[:, i] for i, name in enumerate(data.feature_names)}
    columns[label] = np.asarray(data.target_names)[data.target] if names else data.target
    return _write_csv(folder / f"{loader}.csv", columns)


def five_line_specs(folder: Path) -> dict[str, dict]:
    """Each table's five lines (no device targets: see the module's docstring)."""
    return {
        "breast_cancer": {
            "data": {"source": str(_sklearn_table(folder, "breast_cancer", "diagnosis", names=True))},
            "label": "diagnosis",
            "task": "binary",
            "positive_class": "malignant",
            "metric": {"name": "auc", "threshold": 0.5},
        },
        "wine": {
            "data": {"source": str(_sklearn_table(folder, "wine", "cultivar", names=True))},
            "label": "cultivar",
            "task": "multiclass",
            "metric": {"name": "accuracy", "threshold": 0.5},
        },
        "iris": {
            "data": {"source": str(_sklearn_table(folder, "iris", "species", names=True))},
            "label": "species",
            "task": "multiclass",
            "metric": {"name": "accuracy", "threshold": 0.5},
        },
        "diabetes": {
            "data": {"source": str(_sklearn_table(folder, "diabetes", "progression", names=False))},
            "label": "progression",
            "task": "regression",
            "metric": {"name": "mae", "threshold": 1e9},
        },
        "taxi": {
            "data": {"source": TAXI_DATA},
            "label": "big_tipper",
            "task": "binary",
            "exclude": ["tips"],  # the tip decides the label: target leakage
            "metric": {"name": "auc", "threshold": 0.5},
        },
    }


def ratio(power: dict, higher_is_better: bool) -> float:
    network, trees = power["simple_model"]["model_metric"], power["simple_model"]["simple_metric"]
    return network / trees if higher_is_better else trees / network


def run_table(name: str, raw: dict, home: Path, search: str | None = None, seed: int | None = None) -> dict:
    from pipelines.ops.cli import run_training

    raw = {"name": name.replace("_", "-"), **raw, "deployment": {"tflite": [], "tfjs": []}}
    tuning = {"search": search, "seed": seed}  # the default budget; another search or seed to compare
    if any(value is not None for value in tuning.values()):
        raw["tuning"] = {key: value for key, value in tuning.items() if value is not None}
    home = home / f"{search or 'default'}-{seed or 0}"
    spec_path = home / name / "spec.yaml"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(yaml.safe_dump(raw))
    spec = load_spec(spec_path)
    started = time.monotonic()
    summary = run_training(spec, home / name / "home")
    seconds = time.monotonic() - started
    power = read_power(summary.outputs["DumbBaselineGate"][BASELINE_BLESSING_KEY][0])
    simple = power["simple_model"]
    protocol = read_protocol(summary.outputs["Tuner"]["tuner_results"][0])
    trial_scores = [float(np.mean(trial["fold_scores"])) for trial in protocol["trials"].values()]
    return {
        "table": name,
        "task": spec.task.value,
        "metric": spec.metric.name,
        "network": simple["model_metric"],
        "trees": simple["simple_metric"],
        "dumb": power["dumb_metric"],
        "ratio": ratio(power, spec.metric.higher_is_better),
        "test_rows": simple["test_rows"],
        "seconds": round(seconds, 1),
        "search": spec.tuning.search if spec.tuning else "off",
        "seed": spec.tuning.seed if spec.tuning else None,
        "validation": max(trial_scores) if spec.metric.higher_is_better else min(trial_scores),
        "trials": len(trial_scores),
        "higher_is_better": spec.metric.higher_is_better,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default=str(REPO_ROOT / "build" / "bench" / "quality"))
    parser.add_argument("--tables", nargs="*", help="a subset of the tables (default: all)")
    parser.add_argument(
        "--search", nargs="*", choices=["bayesian", "random"], help="tuning.search (default: the spec's)"
    )
    parser.add_argument("--seeds", type=int, default=1, help="tuning seeds 0..N-1 for each table and search")
    args = parser.parse_args(argv)
    home = Path(args.home).resolve()
    shutil.rmtree(home, ignore_errors=True)
    specs = five_line_specs(home / "data")
    chosen = args.tables or list(specs)
    resolve(TAXI_DATA, REPO_ROOT)  # fails early, with its message, when the taxi data is not installed
    searches = args.search or [None]
    seeds = list(range(args.seeds)) if args.seeds > 1 else [None]
    # Searches interleaved per table and seed: a machine that slows down slows them alike.
    rows = [
        run_table(name, specs[name], home, search, seed)
        for name in chosen
        for seed in seeds
        for search in searches
    ]
    for search in searches:
        print_quality([row for row in rows if row["search"] == (search or row["search"])])
    if len(searches) > 1:
        print_search_comparison(rows)
    return 0


def print_quality(rows: list[dict]) -> None:
    title = f", {rows[0]['search']} search" if rows else ""
    print(f"Quality of the default five-line spec against gradient-boosted trees (same test rows){title}")
    print()
    print(
        "| table | task | metric | seed | network | gradient-boosted trees | dumb baseline | ratio "
        "| test rows | trials | run |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['table']} | {row['task']} | {row['metric']} | {row['seed'] or 0} | {row['network']:.4f} "
            f"| {row['trees']:.4f} | {row['dumb']:.4f} | {row['ratio']:.3f} | {row['test_rows']} "
            f"| {row['trials']} | {row['seconds']:.0f} s |"
        )
    mean = geometric_mean([row["ratio"] for row in rows])
    met = all(row["ratio"] >= TARGET_RATIO for row in rows)
    print()
    print(f"Geometric mean ratio {mean:.3f}; every table within 3% of the trees: {'yes' if met else 'no'}")
    print(json.dumps({"benchmark": "quality", "tables": rows, "geometric_mean_ratio": mean, "met": met}))


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(value) for value in values) / len(values))


def print_search_comparison(rows: list[dict]) -> None:
    """Per table and seed, which search found the better validation objective; per search, its wins and
    the geometric mean of its test ratios."""
    wins: dict[str, int] = {}
    for table, seed in dict.fromkeys((row["table"], row["seed"]) for row in rows):
        runs = [row for row in rows if (row["table"], row["seed"]) == (table, seed)]
        best = (max if runs[0]["higher_is_better"] else min)(row["validation"] for row in runs)
        leaders = [row["search"] for row in runs if row["validation"] == best]
        winner = leaders[0] if len(leaders) == 1 else "tie"  # the same best trial: often an initial point
        wins[winner] = wins.get(winner, 0) + 1
    print()
    print("| search | better validation objective (table x seed) | geometric mean test ratio | trials |")
    print("| --- | ---: | ---: | ---: |")
    summary = {}
    for search in sorted({row["search"] for row in rows}):
        own = [row for row in rows if row["search"] == search]
        summary[search] = {
            "validation_wins": wins.get(search, 0),
            "geometric_mean_ratio": geometric_mean([row["ratio"] for row in own]),
            "mean_trials": float(np.mean([row["trials"] for row in own])),
        }
        print(
            f"| {search} | {summary[search]['validation_wins']} of {len(own)} "
            f"| {summary[search]['geometric_mean_ratio']:.3f} | {summary[search]['mean_trials']:.1f} |"
        )
    print(f"Ties (both searches reached the same best validation objective): {wins.get('tie', 0)}")
    print(json.dumps({"benchmark": "quality-search", "searches": summary, "ties": wins.get("tie", 0)}))


if __name__ == "__main__":
    raise SystemExit(main())
