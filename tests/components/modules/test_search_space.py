"""What the tuner searches beside the network: quantile buckets for numeric features, and a log scale for
a skewed regression label, scored in the label's units (on real values: taxi fares, scikit-learn tables)."""

from __future__ import annotations

import time

import keras_tuner as kt
import numpy as np
import pytest
from sklearn import datasets

from components.core.spec import ProblemSpec
from components.modules.folds import Arrays, fold_plan
from components.modules.model_builder import FeatureInput, quantile_edges, with_quantile_edges
from components.modules.tuner_fn import (
    BudgetedRandomOracle,
    ProtocolTuner,
    SearchChoices,
    SpecHyperModel,
    make_oracle,
    search_space,
    skewed_label,
)
from tests.helpers.data import taxi_rows


def regression_spec(**training) -> ProblemSpec:
    return ProblemSpec.model_validate(
        {
            "name": "fares",
            "data": {"source": "x.csv"},
            "label": "fare",
            "task": "regression",
            "metric": {"name": "mae", "threshold": 100.0},
            "training": training,
            "tuning": {"max_epochs": 8, "trials": 2},
        }
    )


@pytest.fixture(scope="module")
def fares() -> tuple[np.ndarray, np.ndarray]:
    """Trip miles and fares of 3,000 real taxi trips (fares: median $7.85, a long tail to $700)."""
    _, rows = taxi_rows()
    rows = [row for row in rows[:3000] if row["trip_miles"] and row["fare"]]
    miles = np.array([float(row["trip_miles"]) for row in rows], np.float32).reshape(-1, 1)
    return miles, np.array([float(row["fare"]) for row in rows], np.float32).reshape(-1, 1)


def test_only_a_skewed_regression_label_of_values_zero_or_more_is_tried_on_a_log_scale(fares):
    _, fare = fares
    diabetes = datasets.load_diabetes().target.reshape(-1, 1)  # progression: skewness 0.44
    assert skewed_label(regression_spec(), fare)
    assert not skewed_label(regression_spec(), diabetes)
    assert not skewed_label(regression_spec(), fare - 10.0)  # negative values: no log(1 + label)
    binary = regression_spec().model_copy(update={"task": "binary"})
    assert not skewed_label(binary, (fare > 10).astype(np.float32))


def test_the_search_space_holds_the_data_dependent_choices_only_where_they_apply():
    for numeric, log in ((True, True), (True, False), (False, False)):
        hp = kt.HyperParameters()
        fields = search_space(hp, [32, 16], SearchChoices(numeric_encoding=numeric, log_label=log))
        assert ("numeric_encoding" in hp.values) == numeric == ("numeric_encoding" in fields)
        assert ("label_scale" in hp.values) == log == ("label_scale" in fields)
    assert hp.values.keys() >= {"units", "depth", "dropout", "l1", "l2", "learning_rate", "batch_size"}


def test_quantile_edges_cut_real_values_into_equal_count_buckets():
    petal = datasets.load_iris().data[:, 2]
    edges = quantile_edges(petal)
    counts = np.bincount(np.searchsorted(edges, petal, side="right"), minlength=len(edges) + 1)
    assert len(edges) <= 15 and counts.min() > 0
    assert counts.max() <= 3 * len(petal) / (len(edges) + 1)  # ties keep buckets near equal, not exact
    assert quantile_edges(np.array([0, 1, 1, 0, 1], np.float32)) == (0.5,)  # a flag: one edge


def test_no_training_value_lies_on_a_bucket_edge():
    """The raw signature recomputes z-scores to about 1e-7 of a standard deviation: a value on an edge
    could change bucket there (iris' repeated petal widths did, and devices predicted otherwise). Every
    training value keeps its bucket when moved by far more than that."""
    for column in datasets.load_iris().data.T:
        z = ((column - column.mean()) / column.std()).astype(np.float32)
        edges = np.asarray(quantile_edges(z), np.float32)
        assert np.abs(z[:, None] - edges[None, :]).min() > 1e-4
        for nudge in (-1e-5, 1e-5):
            assert np.array_equal(
                np.searchsorted(edges, z, side="right"), np.searchsorted(edges, z + nudge, side="right")
            )


def test_a_log_scale_trial_is_scored_in_the_labels_units(fares, tmp_path):
    """Trials on both scales are compared by validation MAE in dollars (a log-scale trial scored in
    log(1 + fare) units would look several times better than it is), and Keras reports it so."""
    miles, fare = fares
    data = Arrays({"trip_miles": (miles - miles.mean()) / miles.std()}, fare)
    spec = regression_spec(learning_rate=0.01)
    choices = SearchChoices(numeric_encoding=True, log_label=True)
    features = with_quantile_edges([FeatureInput("trip_miles")], data.features)
    tuner = ProtocolTuner(
        spec=spec,
        data=data,
        folds=fold_plan(2400, len(data) - 2400, spec.evaluation),
        sweep=[],
        started=0.0,
        hypermodel=SpecHyperModel(spec, features, 1, [16], fare, choices),
        oracle=make_oracle(spec, deadline=float("inf")),
        directory=str(tmp_path),
        project_name="fares",
    )
    scores = {}
    for scale in ("linear", "log"):
        hp = kt.HyperParameters()
        search_space(hp, [16], choices)
        hp.values.update({"label_scale": scale, "numeric_encoding": "buckets", "batch_size": 64})
        scores[scale], history = tuner._fit_fold(hp, tuner.folds[0])
        # Keras' own validation MAE (the learning curves, the report's validation metric) is in dollars too.
        best = int(np.argmin(history["val_loss"]))
        assert history["val_mae"][best] == pytest.approx(scores[scale], rel=1e-3), scale
    mean_fare_mae = float(np.mean(np.abs(fare[2400:] - np.mean(fare[:2400]))))
    for scale, mae in scores.items():  # dollars: above what log units give (about 0.4), below the mean's
        assert 1.0 < mae < mean_fare_mae, (scale, scores, mean_fare_mae)
    assert max(scores.values()) < 2 * min(scores.values())


def test_the_budget_admits_the_first_trial_always_and_none_once_spent(tmp_path):
    """The oracle lets the first trial through whatever the clock (the Trainer needs one), no later trial
    once the deadline has passed, and records the time each admitted trial was checked against it."""
    hyperparameters = kt.HyperParameters()
    hyperparameters.Choice("units", [8, 16, 32])
    before = time.monotonic()
    oracle = BudgetedRandomOracle(
        objective=kt.Objective("val_auc", "max"),
        max_trials=5,
        hyperparameters=hyperparameters,
        seed=1,
        deadline=before - 1.0,  # already spent
    )
    oracle._set_project_dir(str(tmp_path), "budget")
    first = oracle.create_trial("tuner0")
    assert first.status == "RUNNING" and before <= oracle.admitted[first.trial_id] <= time.monotonic()
    oracle.end_trial(first)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    assert list(oracle.admitted) == [first.trial_id]
