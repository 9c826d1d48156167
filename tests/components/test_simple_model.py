"""The simple-model baseline: gradient-boosted trees on the rows the network trained and was tested on.

Real tables (scikit-learn's, offline) in the raw-input form the gate reads them: `[n, 1]` arrays per
feature, text as objects, date-times as int32 Unix seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import datasets
from sklearn.model_selection import train_test_split

from components.core.spec import ProblemSpec
from components.dumb_baseline_gate.simple_model import (
    FeatureTable,
    compare_with_trees,
    fit_and_predict,
    rows_digest,
)
from components.modules.datetimes import MISSING_SECONDS


def spec_for(task: str, metric: str, label="y") -> ProblemSpec:
    return ProblemSpec.model_validate(
        {
            "name": "t",
            "data": {"source": "x.csv"},
            "label": label,
            "task": task,
            "metric": {"name": metric, "threshold": 0.5},
        }
    )


def as_inputs(matrix: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    return {name: matrix[:, [i]].astype(np.float32) for i, name in enumerate(names)}


def split_table(loader: str):
    """(train inputs, train labels, test inputs, test labels) of a scikit-learn table, 70/30."""
    data = getattr(datasets, f"load_{loader}")()
    x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.3, random_state=0)
    names = [f"f{i}" for i in range(x_train.shape[1])]
    column = lambda y: y.reshape(-1, 1).astype(np.float32)  # noqa: E731
    return as_inputs(x_train, names), column(y_train), as_inputs(x_test, names), column(y_test)


def test_text_categories_are_coded_from_the_training_rows_and_unseen_or_missing_are_nan():
    train = {
        "company": np.array([["Flash"], ["Flash"], ["Blue"], [""]], dtype=object),
        "fare": np.array([[1.0], [np.nan], [3.0], [4.0]], dtype=np.float32),
        "start": np.array([[1_400_000_000], [MISSING_SECONDS], [1_400_000_600], [0]], dtype=np.int32),
    }
    table = FeatureTable(train)
    assert table.names == ["company", "fare", "start"] and table.categorical == [True, False, False]
    test = {  # as the gate reads them: text as bytes
        "company": np.array([[b"Blue"], [b"Blueprint Cabs"], [b""]], dtype=object),
        "fare": np.array([[2.0], [np.nan], [5.0]], dtype=np.float32),
        "start": np.array([[MISSING_SECONDS], [1_400_000_000], [7]], dtype=np.int32),
    }
    matrix = table.matrix(test)
    assert matrix[0, 0] == 1.0 and np.isnan(matrix[1, 0]) and np.isnan(matrix[2, 0])  # Flash 0, Blue 1
    assert np.isnan(matrix[1, 1]) and np.isnan(matrix[0, 2]) and matrix[1, 2] == 1_400_000_000


def test_the_trees_on_breast_cancer_beat_the_dumb_baseline_and_flag_a_network_that_guesses():
    train, y_train, test, y_test = split_table("breast_cancer")
    guesses = np.random.default_rng(0).uniform(size=(len(y_test), 1))
    rows = [b"row-%d" % i for i in range(len(y_test))]
    comparison = compare_with_trees(spec_for("binary", "auc"), train, y_train, test, y_test, guesses, rows)
    assert comparison.simple_metric > 0.97 and comparison.test_rows == len(y_test)
    assert comparison.network_worse and comparison.message.startswith("WORSE THAN A SIMPLE MODEL")
    record = comparison.to_json()
    assert record["network_worse"] is True and record["train_rows"] == len(y_train)


def test_a_network_as_good_as_the_trees_is_not_flagged():
    train, y_train, test, y_test = split_table("diabetes")
    spec = spec_for("regression", "mae")
    table = FeatureTable(train)
    trees = fit_and_predict(spec, table, table.matrix(train), y_train, table.matrix(test))
    assert trees.shape == (len(y_test), 1)
    # The network predicts what the trees predict.
    comparison = compare_with_trees(spec, train, y_train, test, y_test, trees, [b"r"] * len(y_test))
    assert comparison.model_metric == pytest.approx(comparison.simple_metric)
    assert not comparison.network_worse and "gradient-boosted trees:" in comparison.message


def test_multiclass_and_multilabel_predictions_have_the_networks_shape():
    data = datasets.load_iris()
    names = [f"f{i}" for i in range(4)]
    table = FeatureTable(as_inputs(data.data, names))
    matrix = table.matrix(as_inputs(data.data, names))
    probabilities = fit_and_predict(
        spec_for("multiclass", "accuracy"), table, matrix, data.target[:, None], matrix
    )
    assert probabilities.shape == (150, 3) and np.allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == data.target).mean() > 0.95
    flags = np.stack([data.target == 0, data.target == 2], axis=1).astype(np.float32)
    multilabel = spec_for("multilabel", "auc", label=["a", "b"])
    assert fit_and_predict(multilabel, table, matrix, flags, matrix).shape == (150, 2)


def test_the_rows_digest_tells_which_rows_in_which_order():
    rows = [b"a", b"b", b"c"]
    assert rows_digest(rows) == rows_digest(list(rows))
    assert rows_digest(rows) != rows_digest(rows[::-1]) != rows_digest(rows[:2])
