"""Annotated spans: the records `pipelines land --annotations` writes, which the report and `status` read.

An audit (`pipelines audit`) samples a span's rows, adds the rows the model in service is least sure
about, and asks people for their labels. The annotated rows land back as a span of their own (so the
next training window holds them) with one record per such span under `<monitoring>/annotations/`:
how often the audited model agreed with the annotators, on the random sample (an unbiased estimate of
its accuracy on the data in the wild) and on the hardest rows (how it does where it hesitates).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from absl import logging

from components.core.files import replace_file

RECORDS_FOLDER = "annotations"
SAMPLE = "sample"
HARDEST = "hardest"


def records_folder(monitoring_dir: str | Path) -> Path:
    return Path(monitoring_dir) / RECORDS_FOLDER


def record_path(monitoring_dir: str | Path, span: int) -> Path:
    return records_folder(monitoring_dir) / f"span-{span:04d}.json"


def write_record(monitoring_dir: str | Path, record: dict) -> Path:
    path = record_path(monitoring_dir, int(record["span"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, json.dumps(record, indent=1))
    return path


def read_record(monitoring_dir: str | Path, span: int) -> dict | None:
    """The record of an annotated span; None when the span holds no annotations (or its record is
    unreadable, which is logged)."""
    path = record_path(monitoring_dir, span)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        logging.warning("Annotation record %s is unreadable; it is left out", path)
        return None


def read_records(monitoring_dir: str | Path, spans: Iterable[int] | None = None) -> list[dict]:
    """Records of the given spans (default: every annotated span), oldest span first."""
    if spans is None:
        folder = records_folder(monitoring_dir)
        spans = [int(p.stem.split("-")[1]) for p in folder.glob("span-*.json")] if folder.is_dir() else []
    found = (read_record(monitoring_dir, span) for span in sorted(set(spans)))
    return [record for record in found if record is not None]


def describe_group(group: dict, metric: str) -> str:
    """'agreed on 88% of 50 rows (95% interval 76% to 94%)', or the MAE for regression."""
    if group.get("rows", 0) == 0:
        return "no rows"
    low, high = group["interval"]
    if metric == "mae":
        return (
            f"mean absolute difference {group['value']:.4g} on {group['rows']} rows "
            f"(95% interval {low:.4g} to {high:.4g})"
        )
    return f"agreed on {group['value']:.0%} of {group['rows']} rows (95% interval {low:.0%} to {high:.0%})"


def describe(record: dict) -> str:
    """One line: which span, which model version, and its agreement on the sample and the hardest rows."""
    metric = record.get("measure", "agreement")
    parts = [
        f"{name}: {describe_group(record['groups'][name], metric)}"
        for name in (SAMPLE, HARDEST)
        if record.get("groups", {}).get(name, {}).get("rows")
    ]
    return (
        f"span {record['span']} holds {record['rows']} annotated row(s) of span {record['audited_span']}; "
        f"version {record['version']} {'; '.join(parts) or 'was not compared'}"
    )
