"""The shipped taxi trips, and noisy copies of them for benchmarks that need more (or new) rows."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

from components.core.sources import read_table, resolve
from pipelines.settings import REPO_ROOT

TAXI_SOURCE = "pkg://tfx/examples/chicago_taxi_pipeline/data/big_tipper_label/data.csv"
# Measurements jittered in the copies; identifiers, categories, times and the label are kept.
NOISY_COLUMNS = ("fare", "trip_miles", "trip_seconds", "tips")
NOISE = 0.03  # relative sd


def taxi_rows() -> tuple[list[str], list[dict[str, str]]]:
    return read_table(resolve(TAXI_SOURCE, REPO_ROOT))


def noisy_copy(rows: list[dict[str, str]], seed: int) -> Iterator[dict[str, str]]:
    """The rows with each measurement multiplied by 1 + N(0, NOISE) (empty cells stay empty). A cell
    written as an integer stays one (trip_seconds): its column keeps the schema's INT type."""
    rng = random.Random(seed)
    for row in rows:
        copy = dict(row)
        for column in NOISY_COLUMNS:
            cell = copy.get(column)
            if cell:
                noisy = float(cell) * (1 + rng.gauss(0, NOISE))
                copy[column] = str(round(noisy)) if _is_integer(cell) else f"{noisy:.2f}"
        yield copy


def _is_integer(cell: str) -> bool:
    return cell.lstrip("-").isdigit()


def write_replicated(path: Path, factor: int) -> int:
    """The taxi trips `factor` times (the original once, then noisy copies) in one CSV; returns rows."""
    header, rows = taxi_rows()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
        for copy in range(1, factor):
            writer.writerows(noisy_copy(rows, seed=copy))
    return len(rows) * factor
