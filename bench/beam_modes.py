"""Beam's DirectRunner in memory (one worker, the default) against multi-processing (a worker per core).

    python -m bench.beam_modes [--factors 1 10] [--home build/bench/beam_modes]

The taxi training pipeline (no tuning) runs as a whole `python -m pipelines run` process once per size
(the shipped trips, and `factor` noisy copies of them: `bench.taxi_data`) and per Beam profile
(`config/beam/direct.yaml`, `config/beam/direct-all-cores.yaml`), each in a fresh home, the two profiles
of a size one after the other. Prints the Beam components' seconds (ExampleGen, StatisticsGen,
Transform, the Evaluator) and the whole run's for each, and one JSON line. The default profile is the
faster one on the taxi run (issue 23, item 6).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bench.scaling import GIB, Measured, bench_spec
from bench.taxi_data import write_replicated

PROFILES = ("direct", "direct-all-cores")
BEAM_COMPONENTS = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


def run_mode(folder: Path, data: Path, profile: str) -> dict:
    home = folder / profile
    shutil.rmtree(home, ignore_errors=True)
    measured = Measured(bench_spec(folder, data), home, ["--beam-profile", profile])
    if measured.returncode != 0:
        raise SystemExit(f"the run with --beam-profile {profile} failed:\n" + "\n".join(measured.lines[-40:]))
    beam = {node: measured.seconds.get(node) for node in BEAM_COMPONENTS}
    return {
        "profile": profile,
        "seconds": measured.total_seconds,
        "beam_seconds": sum(v for v in beam.values() if v is not None),
        "components": beam,
        "peak_bytes": measured.run_peak,
    }


def print_table(results: list[dict]) -> None:
    print("Beam's DirectRunner: in memory with one worker (direct) vs a worker process per core")
    print()
    print("| rows | profile | " + " | ".join(BEAM_COMPONENTS) + " | Beam components | whole run | peak |")
    print("| ---: | --- |" + " ---: |" * (len(BEAM_COMPONENTS) + 3))
    for size in results:
        for mode in size["modes"]:
            cells = [
                f"{mode['components'][n]:.1f}" if mode["components"][n] else "-" for n in BEAM_COMPONENTS
            ]
            print(
                f"| {size['rows']:,} | {mode['profile']} | "
                + " | ".join(cells)
                + f" | {mode['beam_seconds']:.1f} s | {mode['seconds']:.1f} s"
                + f" | {mode['peak_bytes'] / GIB:.2f} GB |"
            )
    print()
    for size in results:
        by = {m["profile"]: m for m in size["modes"]}
        if set(PROFILES) <= set(by):
            ratio = by["direct-all-cores"]["beam_seconds"] / by["direct"]["beam_seconds"]
            print(f"{size['rows']:,} rows: multi-processing / in-memory (Beam components) = {ratio:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES))
    parser.add_argument("--home", default="build/bench/beam_modes")
    args = parser.parse_args(argv)
    root = Path(args.home).resolve()
    results = []
    for factor in args.factors:
        folder = root / f"x{factor}"
        shutil.rmtree(folder, ignore_errors=True)
        data = folder / "data" / "trips.csv"
        rows = write_replicated(data, factor)
        modes = []
        for profile in args.profiles:
            print(f"running {factor}x with --beam-profile {profile} ...", file=sys.stderr, flush=True)
            modes.append(run_mode(folder, data, profile))
            print(f"  {modes[-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        results.append({"factor": factor, "rows": rows, "modes": modes})
        shutil.rmtree(folder / "data", ignore_errors=True)
    print_table(results)
    print(json.dumps({"bench": "beam_modes", "sizes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
