"""Training stops at the first loss that is not a finite number, and says what to change (run_fn's `fit`).

Real taxi trips, numeric features as z-scores (what Transform hands the Trainer), through the network the
project's model builder makes from a spec. A learning rate far too large drives a fare regression's loss to
NaN or infinity within a few batches; one NaN label poisons its batch's loss. Without the check,
Keras trains on and the Trainer saves a model that predicts NaN.

`run_fn` is read at call time, not imported by name: TFX's Trainer, run in-process by an earlier test of
the same worker, re-executes the module file in place, so a class imported by name at collection would no
longer be the one `fit` raises.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.core.spec import ProblemSpec, TrainingSpec
from components.modules import run_fn
from components.modules.model_builder import FeatureInput, build_model, target_scale
from tests.helpers.data import taxi_rows

ROWS = 2000
BATCH = 64
NUMERIC = ("trip_miles", "trip_seconds", "pickup_latitude", "pickup_longitude")
DIVERGING_RATE = 1000.0


def z_scores(rows: list[dict[str, str]], column: str) -> np.ndarray:
    """A column as Transform makes it: missing cells as the mean, then mean 0 and standard deviation 1."""
    values = np.array([float(row[column]) if row[column] else np.nan for row in rows])
    values = np.where(np.isnan(values), np.nanmean(values), values)
    return ((values - values.mean()) / values.std()).astype(np.float32).reshape(-1, 1)


@pytest.fixture(scope="module")
def trips() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The first real trips: numeric features, the fare in dollars and the big-tipper label."""
    _, rows = taxi_rows()
    rows = [row for row in rows[:ROWS] if row["fare"]]
    features = {column: z_scores(rows, column) for column in NUMERIC}
    fares = np.array([[float(row["fare"])] for row in rows], np.float32)
    tippers = np.array([[float(row["big_tipper"])] for row in rows], np.float32)
    return features, fares, tippers


def spec_for(task: str, learning_rate: float) -> ProblemSpec:
    return ProblemSpec.model_validate(
        {
            "name": "taxi",
            "data": {"source": "x.csv"},
            "label": "fare" if task == "regression" else "big_tipper",
            "task": task,
            "metric": {"name": "mae" if task == "regression" else "auc", "threshold": 0.5},
            "training": {
                "hidden_units": [32, 16],
                "dropout": 0.0,
                "learning_rate": learning_rate,
                "epochs": 3,
                "steps_per_epoch": 20,
                "batch_size": BATCH,
            },
        }
    )


def batches(features: dict[str, np.ndarray], labels: np.ndarray) -> tf.data.Dataset:
    """In order (no shuffle), so a row's batch is known; repeated, as the Trainer's steps_per_epoch needs."""
    return tf.data.Dataset.from_tensor_slices((features, labels)).repeat().batch(BATCH)


def train_fare_regression(trips, learning_rate: float):
    features, fares, _ = trips
    keras.utils.set_random_seed(0)
    spec = spec_for("regression", learning_rate)
    model = build_model([FeatureInput(name) for name in NUMERIC], spec, target_scale=target_scale(fares))
    return run_fn.fit(model, spec, batches(features, fares), None)


def test_a_learning_rate_that_diverges_stops_training_and_names_the_rate(trips):
    with pytest.raises(run_fn.TrainingDivergedError) as diverged:
        train_fare_regression(trips, DIVERGING_RATE)
    message = str(diverged.value)
    # Stopped at the first bad batch of the first epoch, not at the end of training.
    assert re.match(r"training diverged: the loss became (nan|inf) at epoch 1, batch \d+ ", message), message
    assert "(training.learning_rate = 1000); lower training.learning_rate (for example to 100)" in message


def test_the_specs_learning_rate_trains_the_same_network_to_the_end(trips):
    """The control: the same rows and network at the default learning rate are not stopped."""
    history = train_fare_regression(trips, TrainingSpec().learning_rate)
    losses = history.history["loss"]
    assert len(losses) == 3 and np.all(np.isfinite(losses)), losses


def test_one_nan_label_stops_training_at_its_batch(trips):
    """A big-tipper classifier at a sound learning rate, the third batch's first label NaN. (A NaN feature
    does not reach the loss here: the first dense layer's outputs are NaN, and the second layer's fused
    dense + ReLU kernel on CPU turns them into 0, a finite prediction.)"""
    features, _, tippers = trips
    poisoned = tippers.copy()
    poisoned[2 * BATCH, 0] = np.nan
    keras.utils.set_random_seed(0)
    spec = spec_for("binary", 0.003)
    model = build_model([FeatureInput(name) for name in NUMERIC], spec)
    with pytest.raises(run_fn.TrainingDivergedError, match=r"the loss became nan at epoch 1, batch 3 "):
        run_fn.fit(model, spec, batches(features, poisoned), None)
