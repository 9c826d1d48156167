"""Scaling: the taxi training pipeline (no tuning) on 1x, 10x and 100x the trips, per component.

    python -m bench.scaling [--factors 1 10 100] [--home build/bench/scaling]

The 15,002 shipped trips are written `factor` times (the original, then copies whose fare, miles,
seconds and tips carry 3% noise) and the pipeline runs once per size in a fresh home, as a whole
`python -m pipelines run` process. A sampler reads the resident memory of that process and all its
children every 0.25 s; each sample is charged to the component whose progress line comes next (the one
running; the first also carries the imports). Prints per-component wall time and peak memory for each
size, then one JSON line.
Targets (issue 7): 100x completes with peak memory under 8 GB, in at most 30x the 1x time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml

from bench.taxi_data import write_replicated
from pipelines.settings import REPO_ROOT

PROGRESS = re.compile(r"\]\s+(\S+): (started|finished)(?: \((cached, )?([0-9.]+)s\))?")
SAMPLE_SECONDS = 0.25
GIB = 1024**3


def bench_spec(folder: Path, source: Path) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "config" / "taxi.yaml").read_text())
    raw["data"]["source"] = str(source.resolve())
    raw["tuning"] = False
    path = folder / "taxi-scaling.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


class Measured:
    """One pipeline process: per-component seconds and peak memory, and the whole run's."""

    def __init__(self, config: Path, home: Path, extra_args: list[str] | None = None):
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, int] = {}
        self.since_last = 0  # peak memory since the last component finished
        self.run_peak = 0
        self.lines: list[str] = []
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "run", "--config", str(config), "--home", str(home)]
            + (extra_args or []),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        for line in self.process.stdout:
            self._progress(line)
        self.returncode = self.process.wait()
        self.total_seconds = time.perf_counter() - started
        sampler.join(timeout=5)

    def _progress(self, line: str) -> None:
        self.lines.append(line.rstrip())
        found = PROGRESS.search(line)
        if not found:
            return
        node, event, _, seconds = found.groups()
        if event == "finished":  # the run prints one line per component, when it finishes
            self.seconds[node] = float(seconds)
            self.peak[node], self.since_last = self.since_last, 0

    def _sample(self) -> None:
        watched = psutil.Process(self.process.pid)
        while self.process.poll() is None:
            try:
                rss = tree_rss(watched)
            except psutil.NoSuchProcess:
                return
            self.since_last = max(self.since_last, rss)  # charged to the next component to finish
            self.run_peak = max(self.run_peak, rss)
            time.sleep(SAMPLE_SECONDS)


def run_size(folder: Path, factor: int) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    rows = write_replicated(folder / "data" / "trips.csv", factor)
    measured = Measured(bench_spec(folder, folder / "data" / "trips.csv"), folder / "home")
    if measured.returncode != 0:
        raise SystemExit(f"the {factor}x run failed:\n" + "\n".join(measured.lines[-40:]))
    return {
        "factor": factor,
        "rows": rows,
        "seconds": measured.total_seconds,
        "peak_bytes": measured.run_peak,
        "components": {
            node: {"seconds": measured.seconds[node], "peak_bytes": measured.peak.get(node, 0)}
            for node in measured.seconds
        },
    }


def print_tables(sizes: list[dict]) -> None:
    print("Scaling of the taxi pipeline (no tuning; whole process, imports included)")
    print()
    header = " | ".join(f"{s['factor']}x ({s['rows']:,} rows)" for s in sizes)
    print(f"| component | {header} |")
    print("| --- |" + " ---: |" * len(sizes))
    for node in sizes[-1]["components"]:
        cells = []
        for size in sizes:
            figures = size["components"].get(node)
            cells.append(
                f"{figures['seconds']:.1f} s, {figures['peak_bytes'] / GIB:.2f} GB" if figures else "-"
            )
        print(f"| {node} | " + " | ".join(cells) + " |")
    totals = " | ".join(f"**{s['seconds']:.1f} s, {s['peak_bytes'] / GIB:.2f} GB**" for s in sizes)
    print(f"| whole run | {totals} |")
    print()
    base = sizes[0]
    for size in sizes[1:]:
        print(
            f"{size['factor']}x / {base['factor']}x time = {size['seconds'] / base['seconds']:.1f} "
            f"(target at 100x <= 30); peak memory {size['peak_bytes'] / GIB:.2f} GB (target < 8 GB)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--home", default="build/bench/scaling")
    args = parser.parse_args(argv)
    root = Path(args.home).resolve()
    sizes = []
    for factor in args.factors:
        print(f"running {factor}x ...", file=sys.stderr, flush=True)
        size = run_size(root / f"x{factor}", factor)
        sizes.append(size)
        shutil.rmtree(root / f"x{factor}" / "data", ignore_errors=True)  # the CSV can be 200 MB
        print(
            f"  {factor}x: {size['seconds']:.1f} s, peak {size['peak_bytes'] / GIB:.2f} GB",
            file=sys.stderr,
            flush=True,
        )
        (root / "scaling.json").write_text(json.dumps({"bench": "scaling", "sizes": sizes}, indent=1))
    print_tables(sizes)
    print(json.dumps({"bench": "scaling", "sizes": sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
