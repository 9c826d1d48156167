"""Monitoring cost: one drift check of a new 15k-row span against one training run, as whole processes.

    python -m bench.monitoring [--home build/bench/monitoring]

Span 1 is the shipped taxi data; the taxi pipeline (`config/taxi.yaml` without tuning, reading spans)
trains on it. Span 2 is a noisy copy of the same 15,002 trips; `pipelines check` computes its TFDV
statistics, validates them against the production schema and compares them with the training
statistics (drift), then writes its report; span 3 (another noisy copy) is checked the same way.
The first check after a push also computes the reference statistics of the production model's
training data (cached per version), so the second is the steady state. Target (issue 7): a check takes
at most 15% of the training run. Prints a markdown table and one JSON line. The home folder is emptied first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import yaml

from bench.rerun import timed_run
from bench.taxi_data import noisy_copy, taxi_rows
from components.core.sources import write_table
from components.core.spec import ProblemSpec, load_spec
from pipelines.paths import RunPaths
from pipelines.settings import REPO_ROOT
from pipelines.workflow import landing, monitoring


def spanned_spec(home: Path) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "config" / "taxi.yaml").read_text())
    raw["data"]["source"] = str((home / "landing" / "span-{SPAN}" / "*.csv").resolve())
    raw["data"]["window_spans"] = 1
    raw["tuning"] = False
    path = home / "taxi-monitoring.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def timed_check(config: Path, home: Path) -> float:
    """Seconds of one whole `python -m pipelines check` process (imports included)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "check", "--config", str(config), "--home", str(home)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the drift check failed:\n{done.stderr[-3000:]}")
    return seconds


def timed_span_check(
    spec: ProblemSpec, config: Path, home: Path, header: list[str], rows: Iterable[dict[str, str]]
) -> dict:
    """Lands `rows` as the next span and times one whole `pipelines check` of it."""
    number = (landing.newest_span(spec) or 0) + 1
    span = landing.land_span(spec, [write_table(home / "incoming" / str(number) / "data.csv", header, rows)])
    seconds = timed_check(config, home)
    report = monitoring.reports(RunPaths.for_spec(spec.name, home).monitoring_dir, span)[-1]
    return {"span": span, "seconds": seconds, "rows": report["rows"], "decision": report["decision"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", default="build/bench/monitoring")
    args = parser.parse_args(argv)
    home = Path(args.home).resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    config = spanned_spec(home)
    spec = load_spec(config, check_data=False)
    header, rows = taxi_rows()
    landing.land_span(spec, [write_table(home / "incoming" / "1" / "data.csv", header, rows)])
    train_seconds = timed_run(str(config), home)
    checks = [timed_span_check(spec, config, home, header, noisy_copy(rows, seed=span)) for span in (2, 3)]
    ratio = checks[1]["seconds"] / train_seconds
    print(f"Monitoring cost of '{spec.name}' (whole processes, imports included)")
    print()
    print("| step | rows | wall time | / training run |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| training run (span 1) | {len(rows):,} | {train_seconds:.1f} s | 1 |")
    labels = ("first drift check after a push (span 2)", "drift check (span 3)")
    for label, check in zip(labels, checks, strict=True):
        share = check["seconds"] / train_seconds
        print(f"| {label} | {check['rows']:,} | {check['seconds']:.1f} s | {share:.3f} |")
    print()
    print(
        f"drift check / training run = {ratio:.3f} (target <= 0.15); the first check after a push also "
        f"computes the production model's reference statistics; decisions: "
        + ", ".join(check["decision"] for check in checks)
    )
    figures = {"training_seconds": train_seconds, "checks": checks, "ratio": ratio}
    print(json.dumps({"bench": "monitoring", **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
