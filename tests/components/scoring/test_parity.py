"""The parity gate's verdict: a target may lose at most `deployment.parity.tolerance` of the metric."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.core.spec import load_spec
from components.scoring.parity import metric_value, passes
from components.scoring.runtimes import to_json_columns
from tests.helpers.data import TAXI_SPEC


@pytest.fixture(scope="module")
def spec():
    return load_spec(TAXI_SPEC, check_data=False)


def test_target_within_tolerance_passes(spec):
    assert passes(spec, reference=0.950, value=0.941) == (True, "")
    assert passes(spec, reference=0.950, value=0.990) == (True, "")


def test_target_beyond_tolerance_fails_with_the_figures(spec):
    passed, reason = passes(spec, reference=0.950, value=0.930)
    assert not passed
    assert "auc 0.9300 is 0.0200 worse than the SavedModel's 0.9500" in reason
    assert "deployment.parity.tolerance = 0.01" in reason


def test_lower_is_better_metrics_fail_when_they_grow(spec):
    regression = spec.model_copy(
        update={"task": "regression", "metric": spec.metric.model_copy(update={"name": "mse"})}
    )
    assert passes(regression, reference=10.0, value=10.005)[0] is True
    assert passes(regression, reference=10.0, value=10.5)[0] is False


def test_predictions_that_are_not_finite_fail(spec):
    passed, reason = passes(spec, reference=0.95, value=math.nan)
    assert not passed and "not finite" in reason


def test_metric_is_the_evaluators_auc(spec):
    labels = np.array([[0], [0], [1], [1]], dtype=np.float32)
    assert metric_value(spec, labels, np.array([[0.1], [0.4], [0.35], [0.8]])) == pytest.approx(
        0.75, abs=1e-3
    )


def test_missing_numbers_reach_node_as_null():
    columns = to_json_columns(
        {"fare": np.array([[1.5], [np.nan]], np.float32), "company": np.array([["A"], [""]], dtype=object)}
    )
    assert columns == {"fare": [1.5, None], "company": ["A", ""]}
