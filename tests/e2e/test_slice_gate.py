"""Slices that gate: a model whose metric is good overall but poor on one slice of a gated feature is not
blessed, and the failure names the slice and its figure (the DumbBaselineGate, on the Evaluator's test rows).

Real trips with the labels of one company's trips shuffled among them: on that company the label no
longer depends on anything the model sees, so its AUC there is near 0.5, while over every trip it stays
well above the spec's threshold.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from components.core.artifacts import POWER_FILE
from components.core.sources import write_table
from components.core.spec import load_spec
from pipelines.ops.cli import run_training
from pipelines.paths import RunPaths
from tests.helpers.pipeline_runs import output_uri, versions, write_taxi_spec

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("slice-gate")]

FLOOR = 0.7
ROWS = 3000


@pytest.fixture(scope="module")
def gated_run(tmp_path_factory, taxi_rows):
    header, rows = taxi_rows
    rows = [dict(row) for row in rows[:ROWS]]
    company = Counter(row["company"] for row in rows if row["company"]).most_common(1)[0][0]
    chosen = [row for row in rows if row["company"] == company]
    labels = [row["big_tipper"] for row in chosen]
    random.Random(0).shuffle(labels)
    for row, label in zip(chosen, labels, strict=True):
        row["big_tipper"] = label
    folder = tmp_path_factory.mktemp("slice-gate")
    source = write_table(folder / "trips.csv", header, rows)
    spec_path = write_taxi_spec(
        folder,
        source,
        threshold=FLOOR,
        evaluation={"baseline_margin": 0.05, "slice_thresholds": {"company": FLOOR}},
        deployment={"tflite": [], "tfjs": []},
    )
    spec = load_spec(spec_path)
    summary = run_training(spec, folder / "home")
    return spec, summary, RunPaths.for_spec(spec.name, folder / "home"), company


def test_a_slice_below_its_floor_keeps_a_good_model_from_being_blessed(gated_run):
    spec, summary, paths, company = gated_run
    assert summary.metrics["auc"] > FLOOR, "overall the model passes the spec's threshold"
    assert not summary.blessed and not summary.pushed_new
    assert versions(paths.serving_dir) == []
    failures = " | ".join(summary.validation_failures)
    match = re.search(rf"slice company = {re.escape(company)} \((\d+) rows\): auc ([0-9.]+) fails", failures)
    assert match, failures
    assert int(match.group(1)) >= 30 and float(match.group(2)) < 0.65  # no better than a coin, give or take
    assert f"evaluation.slice_thresholds (at least {FLOOR:g})" in failures
    assert not any(failure.startswith("auc:") for failure in summary.validation_failures), "overall passes"
    blessing = output_uri(paths, spec, "DumbBaselineGate", "baseline_blessing")
    gated = {check["value"]: check for check in json.loads((blessing / POWER_FILE).read_text())["slices"]}
    assert gated[company]["passed"] is False and all(check["rows"] >= 30 for check in gated.values())
    assert any(check["passed"] for check in gated.values()), "the other companies' slices pass"
