"""Permutation importance of each raw feature on the test split, with scikit-learn's implementation.

The served model (raw-feature signature) is wrapped as the estimator scikit-learn expects; each
feature's test column is shuffled `repeats` times and the drop in the spec's metric recorded. A
feature whose drop is not clearly above zero brings no measurable benefit on these rows: the report
flags it (the ML Test Score's "all features are beneficial").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

MAX_ROWS = 5_000  # test rows used: enough to rank features, bounded at any data size


class RuntimeEstimator:
    """A model runtime (`predict(inputs) -> array`) seen through scikit-learn's estimator interface."""

    def __init__(self, runtime):
        self.runtime = runtime

    def fit(self, *_args) -> RuntimeEstimator:
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.runtime.predict({name: frame[name].to_numpy().reshape(-1, 1) for name in frame.columns})


def feature_importance(
    runtime,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    score: Callable[[np.ndarray, np.ndarray], float],
    repeats: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Per feature: mean and sd of the drop in `score(labels, predictions)` (higher is better)."""
    rows = min(len(labels), MAX_ROWS)
    frame = pd.DataFrame(
        {name: pd.Series(values[:rows, 0], dtype=values.dtype) for name, values in inputs.items()}
    )
    result = permutation_importance(
        RuntimeEstimator(runtime),
        frame,
        labels[:rows],
        scoring=lambda estimator, x, y: score(y, estimator.predict(x)),
        n_repeats=repeats,
        random_state=seed,
    )
    found = [
        {
            "feature": name,
            "drop": float(result.importances_mean[index]),
            "sd": float(result.importances_std[index]),
            "beneficial": bool(result.importances_mean[index] - 2 * result.importances_std[index] > 0),
        }
        for index, name in enumerate(frame.columns)
    ]
    return sorted(found, key=lambda row: -row["drop"])
