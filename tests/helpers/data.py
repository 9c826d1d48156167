"""Where the tests find the repository and its real data, and small stand-ins they build from it."""

from __future__ import annotations

import os
from pathlib import Path

from components.core.sources import read_table, resolve
from pipelines.settings import REPO_ROOT

TAXI_SOURCE = "pkg://tfx/examples/chicago_taxi_pipeline/data/big_tipper_label/data.csv"
TAXI_SPEC = REPO_ROOT / "config" / "taxi.yaml"
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts"  # screenshots and pages the tests keep for a reader

__all__ = [
    "ARTIFACTS",
    "REPO_ROOT",
    "TAXI_SOURCE",
    "TAXI_SPEC",
    "fake_saved_model",
    "taxi_csv_path",
    "taxi_rows",
]


def taxi_csv_path() -> Path:
    return Path(resolve(TAXI_SOURCE, REPO_ROOT))


def taxi_rows() -> tuple[list[str], list[dict[str, str]]]:
    """The 15,002 real taxi trips that ship inside the tfx package: header and rows."""
    return read_table(taxi_csv_path())


def fake_saved_model(folder: Path) -> str:
    """A folder shaped like a SavedModel (what a pusher copies), with 4 kB of random variables."""
    (folder / "variables").mkdir(parents=True)
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(4096))
    (folder / "saved_model.pb").write_bytes(b"graph")
    return str(folder)
