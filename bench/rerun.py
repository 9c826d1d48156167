"""No-change re-run benchmark: the taxi training pipeline twice on the same data, as whole processes.

    python -m bench.rerun [--config config/taxi.yaml] [--home build/bench/rerun]

The second run finds every component in the cache (ML Metadata) and pushes nothing. Target (issue 7): the
second run takes at most 10% of the first, with zero components re-executed. Prints a markdown table
and one JSON line. The home folder is emptied first, so the first run really trains.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from components.core.spec import load_spec
from pipelines.paths import RunPaths
from pipelines.settings import REPO_ROOT
from pipelines.workflow import results, training


def timed_run(config: str, home: Path) -> float:
    """Seconds of one whole `python -m pipelines run` process (imports included)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--config", config, "--home", str(home)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the pipeline run failed:\n{done.stderr[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="config/taxi.yaml")
    parser.add_argument("--home", default="build/bench/rerun")
    args = parser.parse_args(argv)
    spec = load_spec(args.config)
    home = Path(args.home)
    shutil.rmtree(home, ignore_errors=True)
    paths = RunPaths.for_spec(spec.name, home)
    rows = []
    for label in ("first run", "no-change re-run"):
        seconds = timed_run(args.config, home)
        summary = results.latest_run(paths.metadata_config(), training.pipeline_name(spec))
        executed = [n for n in summary.executed if not n.endswith("_resolver")]
        rows.append(
            {"run": label, "seconds": seconds, "executed": executed, "pushed_new": summary.pushed_new}
        )
    ratio = rows[1]["seconds"] / rows[0]["seconds"]
    print(f"No-change re-run of '{spec.name}' (whole processes, imports included)")
    print()
    print("| run | wall time | components executed | pushed |")
    print("| --- | ---: | ---: | --- |")
    for row in rows:
        pushed = "yes" if row["pushed_new"] else "no"
        print(f"| {row['run']} | {row['seconds']:.1f} s | {len(row['executed'])} | {pushed} |")
    print()
    print(f"re-run / first run = {ratio:.3f} (target <= 0.10, zero components re-executed)")
    print(json.dumps({"bench": "rerun", "runs": rows, "ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
