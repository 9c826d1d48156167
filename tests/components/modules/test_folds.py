"""Evaluation protocols (hold-out, K-fold, iterated K-fold) and the capacity sweep, on real tables."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras
from sklearn import datasets

from components.core.spec import EvaluationSpec, ProblemSpec
from components.modules.folds import Arrays, fold_plan
from components.modules.model_builder import FeatureInput, build_model
from components.modules.tuner_fn import capacity_sweep, overfits

TRAIN_ROWS, EVAL_ROWS = 120, 30


@pytest.mark.parametrize("protocol,repetitions", [("kfold", 1), ("iterated_kfold", 3)])
def test_every_pooled_row_is_validated_exactly_once_per_repetition(protocol, repetitions):
    evaluation = EvaluationSpec(protocol=protocol, folds=4, repetitions=repetitions, seed=3)
    folds = fold_plan(TRAIN_ROWS, EVAL_ROWS, evaluation)
    pool = TRAIN_ROWS + EVAL_ROWS
    assert len(folds) == 4 * repetitions
    orders = []
    for repetition in range(repetitions):
        mine = [f for f in folds if f.repetition == repetition]
        validated = np.concatenate([f.validation for f in mine])
        assert sorted(validated.tolist()) == list(range(pool))  # each row once, no row left out
        for fold in mine:
            assert not set(fold.train) & set(fold.validation)
            assert len(fold.train) + len(fold.validation) == pool
        orders.append(tuple(mine[0].validation))
    assert len(set(orders)) == repetitions  # each repetition shuffles anew


def test_holdout_fits_on_train_rows_and_validates_on_eval_rows():
    (fold,) = fold_plan(TRAIN_ROWS, EVAL_ROWS, EvaluationSpec())
    assert fold.train.tolist() == list(range(TRAIN_ROWS))
    assert fold.validation.tolist() == list(range(TRAIN_ROWS, TRAIN_ROWS + EVAL_ROWS))


def test_more_folds_than_rows_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="evaluation.folds"):
        fold_plan(2, 1, EvaluationSpec(protocol="kfold", folds=5))


def test_overfitting_means_validation_turned_up_while_training_kept_falling():
    assert overfits([1.0, 0.8, 0.6, 0.4, 0.3], [0.9, 0.7, 0.75, 0.8, 0.85], patience=3)
    assert not overfits([1.0, 0.8, 0.6, 0.4, 0.3], [0.9, 0.7, 0.6, 0.5, 0.45], patience=3)
    # validation flat but training flat too: a plateau, not overfitting
    assert not overfits([0.5, 0.5, 0.5, 0.5, 0.5], [0.6, 0.5, 0.55, 0.55, 0.55], patience=3)


def _breast_cancer_arrays(rows: np.ndarray, data, mean, std) -> Arrays:
    features = {f"x{i}": ((data.data[rows, i] - mean[i]) / std[i]).reshape(-1, 1) for i in range(6)}
    return Arrays(features, data.target[rows].reshape(-1, 1).astype(np.float32))


def test_capacity_sweep_stops_at_the_first_network_whose_validation_loss_turns_up():
    """80 real tumours, 6 measurements: a wide network overfits within a few dozen epochs."""
    data = datasets.load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))
    mean, std = data.data.mean(axis=0), data.data.std(axis=0)
    train = _breast_cancer_arrays(order[:80], data, mean, std)
    validation = _breast_cancer_arrays(order[80:280], data, mean, std)
    spec = ProblemSpec.model_validate(
        {
            "name": "tumours",
            "data": {"source": "x.csv"},
            "label": "y",
            "task": "binary",
            "metric": {"name": "auc", "threshold": 0.5},
            "training": {"learning_rate": 0.01},
        }
    )
    features = [FeatureInput(f"x{i}") for i in range(6)]

    def network(hidden_units: list[int]) -> keras.Model:
        return build_model(
            features, spec, training=spec.training.model_copy(update={"hidden_units": hidden_units})
        )

    keras.utils.set_random_seed(0)
    ladder = [[2], [512, 512], [1024, 1024, 1024]]
    steps = capacity_sweep(network, train, validation, ladder, max_epochs=150, patience=5, batch_size=16)
    assert steps[-1].overfit
    assert all(not step.overfit for step in steps[:-1])
    assert len(steps) < len(ladder)  # stopped: the biggest network was never trained
    last = steps[-1]
    assert last.best_epoch < len(last.val_loss)
    assert last.val_loss[-1] > min(last.val_loss)  # validation loss turned up...
    assert last.loss[-1] < last.loss[last.best_epoch - 1]  # ...while training loss kept falling
    assert len(last.loss) == len(last.val_loss) >= last.best_epoch + 5
