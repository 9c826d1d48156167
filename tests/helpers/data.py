"""Where the tests find the repository and its real data, and small stand-ins they build from it."""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SavedAs:
    """One way a program saves a table as CSV."""

    delimiter: str = ","
    line_ending: str = "\n"
    bom: bool = False
    quote_all: bool = False  # every cell and header name in quotes
    missing: str = ""  # how an empty cell is written (R and many exports write NA)
    compressed: bool = False  # gzip


SAVED_AS = {
    "plain": SavedAs(),
    "bom": SavedAs(bom=True),
    "semicolon": SavedAs(delimiter=";"),
    "tab": SavedAs(delimiter="\t"),
    "pipe": SavedAs(delimiter="|"),
    "crlf": SavedAs(line_ending="\r\n"),
    "cr": SavedAs(line_ending="\r"),
    "quoted-header": SavedAs(quote_all=True),
    "na-cells": SavedAs(missing="NA"),
    "gzip": SavedAs(compressed=True),
    # A European spreadsheet's export, zipped: all of the above at once.
    "spreadsheet": SavedAs(";", "\r\n", bom=True, quote_all=True, missing="NA", compressed=True),
}


def save_as(path: Path, header: list[str], rows: list[dict[str, str]], how: SavedAs) -> Path:
    """The rows written as `how` says, byte for byte what that program would write."""
    text = io.StringIO()
    quoting = csv.QUOTE_ALL if how.quote_all else csv.QUOTE_MINIMAL
    writer = csv.writer(text, delimiter=how.delimiter, lineterminator=how.line_ending, quoting=quoting)
    writer.writerow(header)
    for row in rows:
        cells = [row.get(name) or "" for name in header]
        writer.writerow([cell if cell else how.missing for cell in cells])
    data = (("\ufeff" if how.bom else "") + text.getvalue()).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if how.compressed else data)
    return path
