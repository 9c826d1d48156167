"""Slices that gate: a model whose metric is good overall but poor on one slice of a gated column is not
blessed, and the failure names the slice and its figure (the DumbBaselineGate, on the Evaluator's test rows).

The session's served taxi model, gated again on its own test split with the labels of one company's trips
shuffled among them: on that company the label no longer depends on anything the model sees, so its AUC
there falls to about 0.5, while over every test trip it stays above the spec's threshold. The same gate on
the untouched split blesses it: the shuffle is what fails.
"""

from __future__ import annotations

import random
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import tensorflow as tf

from tests.helpers.executors import gate

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]

FLOOR = 0.7
LABEL = "big_tipper"


def _text(example: tf.train.Example, column: str) -> str:
    values = example.features.feature[column].bytes_list.value
    return values[0].decode() if values else ""


def shuffle_one_company(examples_uri: str, copy: Path) -> str:
    """A copy of the examples whose test split has the labels of its most frequent company shuffled."""
    shutil.copytree(examples_uri, copy)
    files = sorted((copy / "Split-test").glob("*.gz"))
    rows = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, "GZIP")]
    company = Counter(_text(row, "company") for row in rows if _text(row, "company")).most_common(1)[0][0]
    chosen = [row for row in rows if _text(row, "company") == company]
    labels = [row.features.feature[LABEL].int64_list.value[0] for row in chosen]
    random.Random(0).shuffle(labels)
    for row, label in zip(chosen, labels, strict=True):
        row.features.feature[LABEL].int64_list.value[:] = [label]
    for path in files:
        path.unlink()
    with tf.io.TFRecordWriter(str(files[0]), options="GZIP") as writer:
        for row in rows:
            writer.write(row.SerializeToString())
    return company


@pytest.fixture(scope="module")
def gated(served_taxi, tmp_path_factory):
    folder = tmp_path_factory.mktemp("slice-gate")
    spec = served_taxi.spec
    gated_spec = spec.model_copy(
        update={
            "evaluation": spec.evaluation.model_copy(
                update={"slice_thresholds": {"company": FLOOR}, "slice_min_rows": 20}
            )
        }
    )
    outputs = served_taxi.summary.outputs
    company = shuffle_one_company(outputs["CsvExampleGen"]["examples"][0], folder / "examples")
    shuffled = gate(outputs, gated_spec, folder / "examples", folder / "shuffled")
    untouched = gate(outputs, gated_spec, outputs["CsvExampleGen"]["examples"][0], folder / "untouched")
    return company, shuffled, untouched


def test_a_slice_below_its_floor_keeps_a_good_model_from_being_blessed(gated):
    company, shuffled, untouched = gated
    assert shuffled["model_metric"] > FLOOR, "overall the model passes the spec's threshold"
    assert shuffled["evaluator_blessed"] and shuffled["statistical_power"]
    assert shuffled["blessed"] is False
    match = re.search(
        rf"slice company = {re.escape(company)} \((\d+) rows\): auc ([0-9.]+) fails",
        shuffled["slice_failures"],
    )
    assert match, shuffled["slice_failures"]
    assert int(match.group(1)) >= 20 and float(match.group(2)) < 0.65  # no better than a coin, give or take
    assert f"evaluation.slice_thresholds (at least {FLOOR:g})" in shuffled["slice_failures"]
    slices = {check["value"]: check for check in shuffled["slices"]}
    assert slices[company]["passed"] is False and all(check["rows"] >= 20 for check in slices.values())


def test_the_same_gate_on_the_untouched_test_split_blesses_the_model(gated):
    company, _, untouched = gated
    assert untouched["blessed"] is True and untouched["slice_failures"] == ""
    assert {check["value"]: check for check in untouched["slices"]}[company]["passed"] is True
