"""Small real tables that ship with scikit-learn (offline), written as CSV with a spec for each task type.

- binary: breast cancer (569 tumours, the label written `malignant` or `benign`)
- multiclass: iris (150 flowers, the label written `setosa`, `versicolor` or `virginica`; columns named as
  the table names them, `petal length (cm)`)
- regression: diabetes (442 patients, disease progression after one year), with a patient id column
- multilabel: the diabetes patients with three labels from real columns, written as exports write flags
  (`yes`/`no`, `True`/`False`, `1`/`0`): progression above its median, triglycerides (s5) above its
  median, blood pressure above its median; s5 and bp are then not features.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import yaml
from sklearn import datasets

# Small tables need a larger share of rows in the test split for the test to mean anything.
SMALL_TABLE_SPLIT = {"train": 0.6, "eval": 0.2, "test": 0.2}
SMALL_TABLE_TRAINING = {
    "epochs": 20,
    "steps_per_epoch": 10,
    "batch_size": 32,
    "hidden_units": [32, 16],
    "dropout": 0.0,
    "learning_rate": 0.003,
    "early_stopping_patience": 4,
}
NO_DEVICE_TARGETS = {"tflite": [], "tfjs": []}


def _column_name(name: str) -> str:
    """'od280/od315 of diluted wines' -> 'od280_od315_of_diluted_wines'."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(columns)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for row in zip(*(columns[name] for name in names), strict=True):
            writer.writerow([f"{v:.6g}" if isinstance(v, float | np.floating) else v for v in row])
    return path


def table(task: str) -> tuple[dict[str, np.ndarray], str | list[str], str]:
    """(columns, label, metric) of the real table for a task type."""
    if task == "binary":
        data = datasets.load_breast_cancer()
        columns = {_column_name(n): data.data[:, i] for i, n in enumerate(data.feature_names)}
        # The classes by name, as the table ships them; the spec names malignant as the positive class.
        columns["diagnosis"] = np.asarray(data.target_names)[data.target]
        return columns, "diagnosis", "auc"
    if task == "multiclass":
        data = datasets.load_iris()
        # The columns named as the table ships them ("petal length (cm)"): spaces and parentheses.
        columns = {n: data.data[:, i] for i, n in enumerate(data.feature_names)}
        columns["species"] = np.asarray(data.target_names)[data.target]
        return columns, "species", "accuracy"
    data = datasets.load_diabetes(scaled=False)
    columns = {_column_name(n): data.data[:, i] for i, n in enumerate(data.feature_names)}
    if task == "regression":
        # As exports carry them: an identifier and a column nobody filled in (`NA` in every row), which
        # the run must leave out of the features, and say why.
        columns["patient_id"] = np.array(
            [f"P-{index * 7919 % 10007:05d}" for index in range(len(data.target))]
        )
        columns["referral_code"] = np.array(["NA"] * len(data.target))
        columns["progression"] = data.target.astype(float)
        return columns, "progression", "mse"
    if task == "multilabel":
        labels = {
            "fast_progression": data.target > np.median(data.target),
            "high_triglycerides": columns.pop("s5") > np.median(data.data[:, 8]),
            "high_blood_pressure": columns.pop("bp") > np.median(data.data[:, 3]),
        }
        written = (np.array(["no", "yes"]), np.array(["False", "True"]), np.array([0, 1]))
        columns.update(
            {
                name: words[flags.astype(int)]
                for (name, flags), words in zip(labels.items(), written, strict=True)
            }
        )
        return columns, list(labels), "auc"
    raise ValueError(f"no table for task {task!r}")


def write_task(
    folder: Path, task: str, shuffle_labels: bool = False, label_codes: dict | None = None, **changes
) -> Path:
    """Writes the task's CSV and spec under `folder`; returns the spec path. `label_codes` writes the
    label's values as other codes (the original Wisconsin file writes benign 2, malignant 4)."""
    columns, label, metric = table(task)
    if label_codes is not None:
        columns[label] = np.array([label_codes[value] for value in columns[label]])
    if shuffle_labels:
        order = np.random.default_rng(7).permutation(len(next(iter(columns.values()))))
        for name in [label] if isinstance(label, str) else label:
            columns[name] = columns[name][order]
    source = write_csv(folder / f"{task}.csv", columns)
    higher = metric != "mse"
    spec = {
        "name": f"sk-{task}",
        "description": f"scikit-learn {task} table",
        "data": {"source": str(source)},
        "label": label,
        "task": task,
        "split": SMALL_TABLE_SPLIT,
        "metric": {"name": metric, "threshold": 0.5 if higher else 1e9},
        "training": dict(SMALL_TABLE_TRAINING),
        "deployment": NO_DEVICE_TARGETS,
        "tuning": False,  # on by default; the runs that test it say so (tests/e2e/test_workflow.py)
    }
    if task == "binary":
        spec["positive_class"] = "malignant"
    spec.update(changes)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
