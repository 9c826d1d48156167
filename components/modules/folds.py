"""Evaluation protocols: hold-out, K-fold and iterated K-fold, over examples held in memory.

The tuner pools the train and eval splits (never the test split) into one table of transformed
features and assigns every row to validation folds:

    hold-out          train rows -> fit, eval rows -> validate (one fold)
    K-fold            one seeded shuffle of the pool cut into K folds; each fold validates once
    iterated K-fold   K-fold repeated P times, each repetition with its own shuffle

so every non-test row is in exactly one validation fold per repetition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from components.core.spec import EvaluationSpec


@dataclass(frozen=True)
class Arrays:
    """Transformed features (name -> `[n, 1]` array) and labels (`[n, 1]` or `[n, labels]`)."""

    features: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> Arrays:
        return Arrays({name: values[rows] for name, values in self.features.items()}, self.labels[rows])

    @staticmethod
    def concat(first: Arrays, second: Arrays) -> Arrays:
        features = {
            name: np.concatenate([first.features[name], second.features[name]]) for name in first.features
        }
        return Arrays(features, np.concatenate([first.labels, second.labels]))


def arrays_from_dataset(dataset: tf.data.Dataset) -> Arrays:
    """Reads a finite dataset of (features, label) batches into memory."""
    features: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    for batch_features, batch_labels in dataset.as_numpy_iterator():
        for name, values in batch_features.items():
            features.setdefault(name, []).append(values)
        labels.append(batch_labels)
    if not labels:
        raise ValueError("the split holds no examples; the evaluation protocol has nothing to score on")
    return Arrays({name: np.concatenate(parts) for name, parts in features.items()}, np.concatenate(labels))


@dataclass(frozen=True)
class Fold:
    """One fit/validate assignment of the pooled rows (indices into the pool)."""

    repetition: int
    index: int
    train: np.ndarray
    validation: np.ndarray


def fold_plan(train_rows: int, eval_rows: int, evaluation: EvaluationSpec) -> list[Fold]:
    """The folds of the spec's protocol over a pool of `train_rows` train rows then `eval_rows` eval rows."""
    pool = train_rows + eval_rows
    if evaluation.protocol == "holdout":
        return [Fold(0, 0, np.arange(train_rows), np.arange(train_rows, pool))]
    if pool < evaluation.folds:
        raise ValueError(
            f"field 'evaluation.folds': {evaluation.folds} folds need at least {evaluation.folds} rows "
            f"outside the test split, the data has {pool}"
        )
    folds = []
    for repetition in range(evaluation.repetition_count):
        shuffled = np.random.default_rng([evaluation.seed, repetition]).permutation(pool)
        parts = np.array_split(shuffled, evaluation.folds)
        for index, validation in enumerate(parts):
            train = np.concatenate([part for other, part in enumerate(parts) if other != index])
            folds.append(Fold(repetition, index, np.sort(train), np.sort(validation)))
    return folds
