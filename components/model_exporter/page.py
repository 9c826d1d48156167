"""What the TF.js page shows beside the model: `page.json` in each TF.js target's folder.

The graph model's signature only names its inputs and their dtypes; a person filling a form needs more:
the features in the spec's order with their kinds, each categorical feature's vocabulary (for a select
list), a typical value of each numeric and date-time feature (the training median, as a placeholder),
a few real test rows (the "fill with a real test row" button) and how to word the answer (task, label,
class names). The file sits inside the target's folder, so the pusher copies it with the model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import types

from components.core.artifacts import raw_input_columns
from components.core.spec import NEGATIVE_WORDS, POSITIVE_WORDS, ProblemSpec, TaskType
from components.modules.datetimes import MISSING_SECONDS, iso_text
from components.modules.preprocessing_fn import vocabulary_name
from components.scoring import parity

PAGE_TEST_ROWS = 20  # real test rows the page can fill its form with
TYPICAL_POOL = 20_000  # training rows read for the typical values
KIND_OF_DTYPE = {tf.string: "categorical", tf.int32: "datetime", tf.float32: "numeric"}

Inputs = dict[str, np.ndarray]


def build_page(
    spec: ProblemSpec,
    tft_output: tft.TFTransformOutput,
    examples: list[types.Artifact],
    input_dtypes: dict[str, tf.DType],
    class_names: list[str] | None,
) -> dict[str, Any]:
    """`page.json` for a model: typical values from the train split, example rows from the test split."""
    train = parity.read_serialized(parity.split_records(examples, parity.TRAIN_SPLIT), TYPICAL_POOL)
    train_inputs, _ = parity.raw_inputs(train, tft_output, input_dtypes)
    test = parity.read_serialized(parity.split_records(examples, parity.TEST_SPLIT), PAGE_TEST_ROWS)
    test_inputs, parsed = parity.raw_inputs(test, tft_output, input_dtypes)
    columns = raw_input_columns(tft_output.raw_feature_spec())
    order = list(spec.feature_columns(list(columns.values())))
    features = feature_entries(columns, order, input_dtypes, train_inputs, tft_output)
    actual = {label: label_cells(parsed[label], len(test)) for label in spec.label_columns}
    return {
        "model": spec.name,
        "description": spec.description,
        "task": spec.task.value,
        "labels": spec.label_columns,
        "classes": class_names,
        "class_labels": class_labels(spec.task, class_names),
        "features": features,
        "test_rows": example_rows(features, test_inputs, actual),
    }


def feature_entries(
    columns: dict[str, str],
    order: list[str],
    input_dtypes: dict[str, tf.DType],
    train_inputs: Inputs,
    tft_output: tft.TFTransformOutput,
) -> list[dict[str, Any]]:
    """One entry per model input, in the spec's order of features (inputs it does not name last)."""
    rank = {column: index for index, column in enumerate(order)}
    entries = []
    for name, dtype in input_dtypes.items():
        column = columns.get(name, name)
        kind = KIND_OF_DTYPE.get(dtype)
        if kind is None:  # not a feature (a resource handle of the graph)
            continue
        entry: dict[str, Any] = {"input": name, "column": column, "kind": kind}
        if kind == "categorical":
            learnt = vocabulary(tft_output, column)
            entry["vocabulary"] = listed(learnt)
            entry["typical"] = learnt[0] if learnt else ""  # the most frequent
        else:
            entry["typical"] = typical_value(kind, train_inputs[name])
        entries.append(entry)
    return sorted(entries, key=lambda e: (rank.get(e["column"], len(rank)), e["column"]))


def vocabulary(tft_output: tft.TFTransformOutput, column: str) -> list[str]:
    """A categorical feature's vocabulary as TF Transform learnt it on the train split (most frequent
    first)."""
    try:
        values = tft_output.vocabulary_by_name(vocabulary_name(column))
    except ValueError:  # none was learnt (Transform names each vocabulary after its feature)
        return []
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def listed(vocabulary: list[str]) -> list[str]:
    """A vocabulary as a select list shows it: codes that are whole numbers (hours, months, areas) in
    numeric order, names most frequent first (as TF Transform wrote them)."""
    if vocabulary and all(v.lstrip("-").isdigit() for v in vocabulary):
        return sorted(vocabulary, key=int)
    return list(vocabulary)


def typical_value(kind: str, values: np.ndarray) -> float | str | None:
    """The median of the present values: a number to 4 significant digits, a date-time as ISO text."""
    flat = values.reshape(-1)
    if kind == "datetime":
        present = flat[flat != MISSING_SECONDS]
        return iso_text(int(np.median(present))) if present.size else None
    present = flat[~np.isnan(flat)]
    return float(f"{np.median(present):.4g}") if present.size else None


def form_value(kind: str, value: Any) -> float | str | None:
    """A raw input as the page's form writes it: a number (None = missing), text, or ISO date-time."""
    if kind == "datetime":
        return "" if int(value) == MISSING_SECONDS else iso_text(int(value))
    if kind == "categorical":
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    # float32 as the shortest decimal that reads back as the same float32 (12.45, not 12.4499998)
    return None if math.isnan(float(value)) else float(np.format_float_positional(np.float32(value)))


def example_rows(features: list[dict[str, Any]], inputs: Inputs, actual: dict[str, list[str]]) -> list[dict]:
    """Each test row's form values by input name, and its real label(s) as the data writes them."""
    count = len(next(iter(inputs.values()))) if inputs else 0
    return [
        {
            "values": {f["input"]: form_value(f["kind"], inputs[f["input"]][row, 0]) for f in features},
            "actual": {label: cells[row] for label, cells in actual.items()},
        }
        for row in range(count)
    ]


def label_cells(column: tf.Tensor | tf.SparseTensor, count: int) -> list[str]:
    """A parsed label column as text, the way class names write it ("1", "Cash", "12.5"); "" if missing."""
    cells = [""] * count
    if isinstance(column, tf.SparseTensor):
        pairs = zip(column.indices.numpy()[:, 0], column.values.numpy(), strict=True)
    else:
        pairs = enumerate(column.numpy().reshape(count, -1)[:, 0])
    for row, value in pairs:
        cells[int(row)] = _text(value)
    return cells


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.floating | float):
        return format(float(np.float32(value)), "g")
    return str(int(value))


def class_labels(task: TaskType, class_names: list[str] | None) -> list[str] | None:
    """How the page words each class: "no"/"yes" for a binary label written as 0/1, false/true, n/y;
    the class names as the data writes them otherwise."""
    if class_names is None:
        return None
    if task == TaskType.BINARY:
        negative, positive = (name.strip().lower() for name in class_names)
        if negative in NEGATIVE_WORDS and positive in POSITIVE_WORDS:
            return ["no", "yes"]
    return list(class_names)
