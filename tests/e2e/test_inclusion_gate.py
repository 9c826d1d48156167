"""Considerations of inclusion (ML Test Score, model 7): a model whose error rates differ too much across the
groups of a sensitive column is not blessed, and the gate names the groups with their rates.

The session's served taxi model (tests/conftest.py::served_taxi), gated again by the DumbBaselineGate's
executor on its own test split with `evaluation.sensitive` on payment type at the default `max_gap`. On these
trips a cash tip is almost never recorded, so the model's false-positive and false-negative rates differ
across payment types far beyond 0.1, although the model passes every other check. The rates are recomputed
here from the served run's own saved test predictions, independently of the gate's code.
"""

from __future__ import annotations

import numpy as np
import pytest

from components.core.artifacts import TEST_PREDICTIONS_FILE
from components.core.spec import SensitiveSpec
from tests.helpers.executors import gate

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]

COLUMN = "payment_type"
MAX_GAP = 0.1
MIN_ROWS = 20


def error_rates(served_taxi) -> dict[str, tuple[float | None, float | None]]:
    """(false-positive rate, false-negative rate) at 0.5 per payment type with at least MIN_ROWS test rows."""
    saved = np.load(served_taxi.gate_predictions / TEST_PREDICTIONS_FILE)
    actual, decided = saved["labels"][:, 0] == 1, saved["predictions"][:, 0] >= 0.5
    groups = saved[f"feature/{COLUMN}"]
    rates = {}
    for value in sorted(set(groups) - {""}):
        rows = groups == value
        if rows.sum() < MIN_ROWS:
            continue
        negatives, positives = rows & ~actual, rows & actual
        fpr = (decided & negatives).sum() / negatives.sum() if negatives.any() else None
        fnr = (~decided & positives).sum() / positives.sum() if positives.any() else None
        rates[str(value)] = (fpr, fnr)
    return rates


@pytest.fixture(scope="module")
def gated(served_taxi, tmp_path_factory) -> dict:
    spec = served_taxi.spec
    sensitive = spec.model_copy(
        update={
            "evaluation": spec.evaluation.model_copy(
                update={
                    "sensitive": SensitiveSpec(features=[COLUMN], max_gap=MAX_GAP),
                    "slice_min_rows": MIN_ROWS,
                }
            )
        }
    )
    outputs = served_taxi.summary.outputs
    examples_uri = outputs["CsvExampleGen"]["examples"][0]
    return gate(outputs, sensitive, examples_uri, tmp_path_factory.mktemp("inclusion"))


def test_error_rates_far_apart_across_payment_types_keep_a_good_model_from_being_blessed(gated, served_taxi):
    assert gated["evaluator_blessed"] and gated["statistical_power"] and gated["slices"] == []
    assert gated["blessed"] is False
    expected = error_rates(served_taxi)
    assert {"Cash", "Credit Card"} <= set(expected)
    recorded = {
        group["value"]: (group["false_positive_rate"], group["false_negative_rate"])
        for group in gated["sensitive_groups"]
    }
    assert recorded.keys() == expected.keys()
    for value, rates in expected.items():
        assert recorded[value] == pytest.approx(rates), value
    failures = gated["slice_failures"]
    gaps = 0
    for index, kind in enumerate(("false-positive", "false-negative")):
        measured = sorted(
            (rates[index], value) for value, rates in expected.items() if rates[index] is not None
        )
        (low, low_group), (high, high_group) = measured[0], measured[-1]
        if high - low > MAX_GAP:
            gaps += 1
            assert (
                f"{COLUMN}: {kind} rate {high:.3f} for {high_group} against {low:.3f} for {low_group}, "
                f"a gap of {high - low:.3f} over evaluation.sensitive.max_gap = {MAX_GAP:g}"
            ) in failures, failures
    assert gaps >= 1 and failures.count("over evaluation.sensitive.max_gap") == gaps
