"""A pushed model's metric on raw CSV rows: how the production model does on newly arrived data."""

from __future__ import annotations

import numpy as np

from components.core.spec import ProblemSpec


def metric_value(spec: ProblemSpec, labels: np.ndarray, predictions: np.ndarray) -> float:
    """The spec's metric of `predictions` against `labels`, computed as the report computes it."""
    from components.scoring.metrics import metric_value as named_metric_value

    return named_metric_value(spec.metric.name, spec.task.value, labels, predictions)


def score_rows(spec: ProblemSpec, production, rows: list[dict[str, str]]) -> float | None:
    """A `results.ProductionModel`'s metric on labelled rows through its tf.Example signature.

    None when the rows cannot give the metric (no labelled rows, one class only, other tasks).
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.core.artifacts import PREDICTIONS_KEY
    from components.scoring.examples import to_tf_example

    label = spec.label_columns[0]
    rows = [row for row in rows if (row.get(label) or "").strip()]
    if not rows or spec.task.value not in ("binary", "regression"):
        return None
    raw_spec = tft.TFTransformOutput(production.transform_uri).raw_feature_spec()
    serve = tf.saved_model.load(production.serving_model_dir).signatures["serving_default"]
    predictions = []
    for start in range(0, len(rows), 512):
        batch = [to_tf_example(row, raw_spec) for row in rows[start : start + 512]]
        output = serve(examples=tf.constant(batch))
        predictions.append(output[PREDICTIONS_KEY].numpy().reshape(-1))
    labels = np.array([float(row[label]) for row in rows])
    if spec.task.value == "binary" and len(set(labels)) < 2:
        return None
    return metric_value(spec, labels, np.concatenate(predictions))
