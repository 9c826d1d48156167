"""A pushed model's metric on raw CSV rows: how the production model does on newly arrived data."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from components.core.spec import ProblemSpec

BATCH_ROWS = 512


def metric_value(spec: ProblemSpec, labels: np.ndarray, predictions: np.ndarray) -> float:
    """The spec's metric of `predictions` against `labels`, computed as the report computes it."""
    from components.scoring.metrics import metric_value as named_metric_value

    return named_metric_value(spec.metric.name, spec.task.value, labels, predictions)


def labelled_rows(spec: ProblemSpec, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows with a value in every label column (the others cannot be scored)."""
    return [row for row in rows if all((row.get(label) or "").strip() for label in spec.label_columns)]


def labelled_examples(spec: ProblemSpec, raw_feature_spec: dict, serialized):
    """The serialized tf.Examples (a string tensor) with a value in every label column, as
    `labelled_rows` keeps rows: a label left out, empty or blank cannot be scored."""
    import tensorflow as tf

    labels = tf.io.parse_example(
        serialized, {name: tf.io.VarLenFeature(raw_feature_spec[name].dtype) for name in spec.label_columns}
    )
    keep = np.ones(int(tf.shape(serialized)[0]), dtype=bool)
    for values in labels.values():
        present = values.values
        if present.dtype == tf.string:
            present = tf.strings.length(tf.strings.strip(present)) > 0
        else:
            present = tf.ones_like(present, dtype=tf.bool)
        rows = values.indices[:, 0].numpy()[present.numpy()]
        keep &= np.bincount(rows, minlength=keep.size) > 0
    return tf.boolean_mask(serialized, keep)


def labelled_predictions(
    spec: ProblemSpec, saved_model_dir: str, raw_feature_spec: dict, rows: list[dict[str, str]]
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of labelled `rows` through the SavedModel's own tf.Example signatures
    (`example_predictions`)."""
    import tensorflow as tf

    from components.scoring.examples import to_tf_example

    batches = (
        tf.constant([to_tf_example(row, raw_feature_spec) for row in rows[start : start + BATCH_ROWS]])
        for start in range(0, len(rows), BATCH_ROWS)
    )
    return example_predictions(spec, saved_model_dir, raw_feature_spec, batches)


def example_predictions(
    spec: ProblemSpec, saved_model_dir: str, raw_feature_spec: dict, batches: Iterable
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of the labelled ones of serialized tf.Example `batches` (string tensors)
    through the SavedModel's own signatures.

    `serving_default` predicts; `transformed_labels` returns the labels as the model was trained on
    them (text classes as class ids, "yes"/"no" as 1/0), so a label written as the data writes it is
    scored as the Evaluator scored the test split. Shapes as `components.scoring.metrics` takes them;
    empty arrays when no example carries every label.
    """
    import tensorflow as tf

    from components.core.artifacts import (
        PREDICTIONS_KEY,
        SERVING_SIGNATURE,
        TRANSFORMED_LABELS_SIGNATURE,
    )
    from components.scoring.metrics import prediction_arrays, task_arrays

    model = tf.saved_model.load(saved_model_dir)
    serve, encode = model.signatures[SERVING_SIGNATURE], model.signatures[TRANSFORMED_LABELS_SIGNATURE]
    predictions, labels = [], []
    for batch in batches:
        batch = labelled_examples(spec, raw_feature_spec, batch)
        if batch.shape[0] == 0:
            continue
        predictions.append(serve(examples=batch)[PREDICTIONS_KEY].numpy())
        encoded = encode(examples=batch)
        labels.append(
            np.concatenate(
                [np.reshape(encoded[name].numpy(), (-1, 1)) for name in spec.label_columns], axis=1
            )
        )
    if not labels:
        return np.zeros(0), np.zeros(0)
    return task_arrays(spec, np.concatenate(labels)), prediction_arrays(spec, np.concatenate(predictions))


def score_rows(spec: ProblemSpec, production, rows: list[dict[str, str]]) -> float | None:
    """A `results.ProductionModel`'s metric on labelled rows through its tf.Example signature.

    None when the rows cannot give the metric (no labelled rows, one class only, other tasks).
    """
    import tensorflow_transform as tft

    rows = labelled_rows(spec, rows)
    if not rows or spec.task.value not in ("binary", "regression"):
        return None
    raw_spec = tft.TFTransformOutput(production.transform_uri).raw_feature_spec()
    labels, predictions = labelled_predictions(spec, production.serving_model_dir, raw_spec, rows)
    if spec.task.value == "binary" and len(set(labels)) < 2:
        return None
    return metric_value(spec, labels, predictions)
