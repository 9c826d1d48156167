"""The DumbBaselineGate's slice checks on real taxi trips: per-slice floors and error-rate gaps across the
groups of a sensitive column (payment type)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from components.core.spec import ProblemSpec
from components.dumb_baseline_gate.slices import (
    failures_message,
    group_rates,
    rate_gaps_message,
    slice_checks,
)
from tests.helpers.data import taxi_rows


def spec(**evaluation) -> ProblemSpec:
    return ProblemSpec.model_validate(
        {
            "name": "taxi",
            "data": {"source": "x.csv"},
            "label": "big_tipper",
            "task": "binary",
            "metric": {"name": "auc", "threshold": 0.5},
            "evaluation": evaluation,
        }
    )


@pytest.fixture(scope="module")
def trips():
    """Payment type and big_tipper of 3,000 real trips, as the gate parses them."""
    _, rows = taxi_rows()
    rows = rows[:3000]
    parsed = {"payment_type": tf.constant([[row["payment_type"].encode()] for row in rows])}
    labels = np.array([[int(row["big_tipper"])] for row in rows])
    card = np.array([[row["payment_type"] == "Credit Card"] for row in rows])
    return parsed, labels, card


def test_a_model_that_only_knows_the_payment_type_fails_a_per_payment_type_floor(trips):
    parsed, labels, card = trips
    gated = spec(slice_thresholds={"payment_type": 0.7})
    by_payment = np.where(card, 0.9, 0.1)  # one score per payment type: no ranking within a slice
    checks = {check.value: check for check in slice_checks(gated, parsed, labels, by_payment)}
    assert checks["Credit Card"].metric == pytest.approx(0.5) and not checks["Credit Card"].passed
    assert "slice payment_type = Credit Card" in failures_message(gated, list(checks.values()))
    assert all(check.rows >= 30 for check in checks.values())  # small slices are not judged
    perfect = slice_checks(gated, parsed, labels, labels.astype(float))
    assert failures_message(gated, perfect) == ""
    assert all(check.passed for check in perfect)


def test_error_rates_far_apart_across_payment_types_are_named_with_their_figures(trips):
    parsed, labels, card = trips
    fair = spec(sensitive={"features": ["payment_type"], "max_gap": 0.1})
    groups = group_rates(fair, parsed, labels, np.where(card, 0.9, 0.1))
    rates = {group.value: group for group in groups}
    assert rates["Credit Card"].false_positive_rate == pytest.approx(1.0)
    assert rates["Cash"].false_positive_rate == pytest.approx(0.0)
    message = rate_gaps_message(fair, groups)
    assert "payment_type: false-positive rate 1.000 for Credit Card against 0.000 for Cash" in message
    assert "max_gap = 0.1" in message
    assert rate_gaps_message(fair, group_rates(fair, parsed, labels, labels.astype(float))) == ""


def test_sensitive_groups_are_for_binary_classifiers_only():
    with pytest.raises(ValueError, match="evaluation.sensitive"):
        ProblemSpec.model_validate(
            {
                "name": "fares",
                "data": {"source": "x.csv"},
                "label": "fare",
                "task": "regression",
                "metric": {"name": "mae", "threshold": 5.0},
                "evaluation": {"sensitive": {"features": ["payment_type"]}},
            }
        )
