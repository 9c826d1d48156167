"""The tf_keras model built from the spec: inputs from the transformed features, head from the task."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.core.artifacts import PREDICTIONS_KEY
from components.core.spec import ProblemSpec, TaskType, TrainingSpec

# Numeric inputs (z-scores) are clipped to +-Z_CLIP standard deviations: a few extreme outliers (a
# 20-hour taxi trip) would otherwise stretch the first layer's input range, which int8 quantization
# shares across every feature, and leave too few levels for ordinary values.
Z_CLIP = 5.0


@keras.utils.register_keras_serializable(package="blueprint")
class ClipValues(keras.layers.Layer):
    """Clips its input to [-limit, limit] (builtin MINIMUM/MAXIMUM ops in TFLite, and in TF.js)."""

    def __init__(self, limit: float, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(inputs, -self.limit, self.limit)

    def get_config(self) -> dict:
        return {**super().get_config(), "limit": self.limit}


@keras.utils.register_keras_serializable(package="blueprint")
class DropUnitAxis(keras.layers.Layer):
    """An embedding's `[batch, 1, size]` as `[batch, size]`, by one squeeze.

    Keras' Reshape computes the batch size at run time: a device model carried SHAPE, STRIDED_SLICE,
    PACK and RESHAPE (and their tensors) for every embedding, most of the taxi int8 model's structure."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.squeeze(inputs, axis=1)


@keras.utils.register_keras_serializable(package="blueprint")
class QuantileBucket(keras.layers.Layer):
    """The bucket a z-score falls in: how many of the training quantiles `edges` it reaches (0..len(edges)).

    Comparisons and a sum rather than Keras' Discretization: TF.js has no `Bucketize` kernel, and these
    run as TFLite builtins and in TF.js alike.
    """

    def __init__(self, edges: list[float], **kwargs):
        super().__init__(**kwargs)
        self.edges = [float(edge) for edge in edges]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        reached = tf.greater_equal(inputs, tf.constant([self.edges], tf.float32))
        return tf.reduce_sum(tf.cast(reached, tf.int32), axis=1, keepdims=True)

    def get_config(self) -> dict:
        return {**super().get_config(), "edges": self.edges}


@keras.utils.register_keras_serializable(package="blueprint")
class LogToLabelUnits(keras.layers.Layer):
    """exp(x) - 1: a prediction of log(1 + label) back in the label's units (EXP and SUB run everywhere)."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.exp(inputs) - 1.0


QUANTILE_BUCKETS = 16


def quantile_edges(values: np.ndarray, buckets: int = QUANTILE_BUCKETS) -> tuple[float, ...]:
    """The inner boundaries of `buckets` equal-count buckets of a feature's training values (float32),
    each once, above its minimum, so no bucket is empty (a 0/1 flag gets one).

    Each boundary lies halfway between the quantile (the lowest value of its bucket) and the training
    value just below it, never on a value the data holds: the raw signature recomputes a z-score from
    the raw value to about 1e-7 of a standard deviation, and a value sitting exactly on a boundary (iris'
    petal widths repeat, so many do) fell into the next bucket down there and not in TF Serving's
    signature, so devices predicted otherwise."""
    values = np.asarray(values, np.float64).ravel()
    inner = np.quantile(values, np.linspace(0, 1, buckets + 1)[1:-1], method="inverted_cdf")
    distinct = np.unique(values.astype(np.float32))
    lowest = np.unique(inner.astype(np.float32))
    lowest = lowest[lowest > distinct[0]]
    below = distinct[np.searchsorted(distinct, lowest) - 1]
    halfway = ((below.astype(np.float64) + lowest) / 2).astype(np.float32)
    edges = np.where(halfway > below, halfway, lowest)  # adjacent float32 values: the quantile itself
    return tuple(float(edge) for edge in edges)


@dataclass(frozen=True)
class FeatureInput:
    """One transformed feature: numeric (a z-score) or categorical (an index below `buckets`).

    A numeric feature's `edges` (its training quantiles, as z-scores) let the network also embed its
    quantile bucket when the training spec's `numeric_encoding` is `buckets`: None until they are
    computed, empty for a feature constant in training (one bucket would tell the network nothing)."""

    name: str
    buckets: int = 0  # 0 for a numeric feature
    edges: tuple[float, ...] | None = None

    @property
    def is_categorical(self) -> bool:
        return self.buckets > 0


def with_quantile_edges(features: list[FeatureInput], sample: dict[str, np.ndarray]) -> list[FeatureInput]:
    """The features, each numeric one with the quantile edges of its values in `sample` (training rows)."""
    return [
        feature if feature.is_categorical else replace(feature, edges=quantile_edges(sample[feature.name]))
        for feature in features
    ]


@dataclass(frozen=True)
class Head:
    """Last layer and loss for a task, as the universal workflow prescribes."""

    units: int
    activation: str | None
    loss: str


def head_for(task: TaskType, outputs: int) -> Head:
    """binary -> sigmoid + binary crossentropy; multiclass -> softmax + sparse categorical
    crossentropy; multilabel -> one sigmoid per label + binary crossentropy; regression -> linear + mse."""
    if task == TaskType.BINARY:
        return Head(1, "sigmoid", "binary_crossentropy")
    if task == TaskType.MULTICLASS:
        return Head(outputs, "softmax", "sparse_categorical_crossentropy")
    if task == TaskType.MULTILABEL:
        return Head(outputs, "sigmoid", "binary_crossentropy")
    return Head(1, None, "mse")


class LogScaleMeanAbsoluteError(keras.metrics.MeanAbsoluteError):
    """The mean absolute error in the label's units of a network fitted to log(1 + label): the learning
    curves and the validation metric the report shows stay in the label's units."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(tf.math.expm1(y_true), tf.math.expm1(y_pred), sample_weight)


def training_metrics(task: TaskType, label_scale: str = "linear") -> list[keras.metrics.Metric]:
    if task in (TaskType.BINARY, TaskType.MULTILABEL):
        return [keras.metrics.AUC(name="auc", multi_label=task == TaskType.MULTILABEL)]
    if task == TaskType.MULTICLASS:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if label_scale == "log":
        return [LogScaleMeanAbsoluteError(name="mae")]
    return [keras.metrics.MeanAbsoluteError(name="mae")]


def embedding_size(buckets: int) -> int:
    """A small embedding: about the fourth root of the number of categories, at least 2."""
    return max(2, min(16, math.ceil(buckets**0.25 * 2)))


def skip_autograph(model: keras.Model) -> None:
    """Traces the model's train/test/predict steps without AutoGraph.

    AutoGraph rewrites the Python source of Keras' whole training step on the first `fit`, which
    costs about 20 s on this kind of machine; the step has no data-dependent Python control flow, so
    plain tracing builds the same graph in about 2 s.
    """
    for step in ("train_step", "test_step", "predict_step"):
        setattr(model, step, tf.autograph.experimental.do_not_convert(getattr(model, step)))


def layer_name(column: str) -> str:
    """A column name as a Keras layer name: TensorFlow scope names take letters, digits and `_.-` only
    ("petal length (cm)" -> "petal_length_cm_")."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", column)
    return name if re.match(r"[A-Za-z0-9.]", name) else f"f{name}"


def build_model(
    features: list[FeatureInput],
    spec: ProblemSpec,
    outputs: int = 1,
    training: TrainingSpec | None = None,
    target_scale: tuple[float, float] | None = None,
) -> keras.Model:
    """A dense network over the transformed features, with the head the task needs: one `[batch, 1]`
    input per feature (as TF Transform writes them), the numeric ones stacked into one `[batch, n]`
    z-score matrix in `features` order, then `network_output`.

    `target_scale` (regression only): the training label's (mean, standard deviation)."""
    training = training or spec.training
    # Keras matches a dict of inputs by its keys; layer names must be TensorFlow scope names.
    inputs = {
        feature.name: keras.Input(
            shape=(1,),
            name=layer_name(feature.name),
            dtype=tf.int64 if feature.is_categorical else tf.float32,
        )
        for feature in features
    }
    numeric = [inputs[feature.name] for feature in features if not feature.is_categorical]
    z_scores = None
    if numeric:
        z_scores = keras.layers.Concatenate(name="numeric")(numeric) if len(numeric) > 1 else numeric[0]
    layers = network_layers(features, spec, outputs, training, target_scale)
    categorical = {feature.name: inputs[feature.name] for feature in features if feature.is_categorical}
    model = keras.Model(inputs=inputs, outputs=network_output(layers, features, z_scores, categorical))
    compile_model(model, spec, training)
    return model


NUMERIC_CLIP = "numeric_clip"
STANDARDIZED_PREDICTIONS = f"{PREDICTIONS_KEY}_standardized"
LOG_PREDICTIONS = f"{PREDICTIONS_KEY}_log"


def network_layers(
    features: list[FeatureInput],
    spec: ProblemSpec,
    outputs: int,
    training: TrainingSpec,
    target_scale: tuple[float, float] | None,
) -> dict[str, keras.layers.Layer]:
    """The network's layers by name, for `network_output`: the clip, embeddings (and quantile buckets),
    dense layers and the task's head."""
    layers: dict[str, keras.layers.Layer] = {}
    if any(not feature.is_categorical for feature in features):
        # One clip over every z-score: a device model carries two ops for it, not two per feature.
        layers[NUMERIC_CLIP] = ClipValues(Z_CLIP, name=NUMERIC_CLIP)
    for feature in features:
        layer = layer_name(feature.name)
        if feature.is_categorical:
            size = embedding_size(feature.buckets)
            layers[f"{layer}_embedding"] = keras.layers.Embedding(
                feature.buckets, size, name=f"{layer}_embedding"
            )
            layers[f"{layer}_flat"] = DropUnitAxis(name=f"{layer}_flat")
        elif training.numeric_encoding == "buckets":
            if feature.edges is None:
                raise ValueError(
                    f"feature '{feature.name}': the bucket encoding needs its training quantiles"
                )
            if not feature.edges:  # constant in training (a column missing in every row): its z-score only
                continue
            count = len(feature.edges) + 1
            layers[f"{layer}_bucket"] = QuantileBucket(list(feature.edges), name=f"{layer}_bucket")
            name = f"{layer}_bucket_embedding"
            layers[name] = keras.layers.Embedding(count, embedding_size(count), name=name)
            layers[f"{layer}_bucket_flat"] = DropUnitAxis(name=f"{layer}_bucket_flat")
    layers["features"] = keras.layers.Concatenate(name="features")
    regularizer = (
        keras.regularizers.L1L2(l1=training.l1, l2=training.l2) if training.l1 or training.l2 else None
    )
    for depth, units in enumerate(training.hidden_units):
        name = f"dense_{depth}"
        layers[name] = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=name)
        if training.dropout:
            layers[f"dropout_{depth}"] = keras.layers.Dropout(training.dropout, name=f"dropout_{depth}")
    head = head_for(spec.task, outputs)
    if spec.task == TaskType.REGRESSION and target_scale is not None:
        # The network predicts a standardized target; the last layer puts it back in the label's units
        # (on a log scale, in log(1 + label): see `in_label_units`), so a target in the hundreds does not
        # take thousands of steps just to reach its scale.
        mean, std = target_scale
        layers[STANDARDIZED_PREDICTIONS] = keras.layers.Dense(1, name=STANDARDIZED_PREDICTIONS)
        name = PREDICTIONS_KEY if training.label_scale == "linear" else LOG_PREDICTIONS
        layers[name] = keras.layers.Rescaling(scale=std, offset=mean, name=name)
    else:
        layers[PREDICTIONS_KEY] = keras.layers.Dense(
            head.units, activation=head.activation, name=PREDICTIONS_KEY
        )
    return layers


def network_output(
    layers: dict[str, keras.layers.Layer],
    features: list[FeatureInput],
    z_scores: tf.Tensor | None,
    categorical: dict[str, tf.Tensor],
) -> tf.Tensor:
    """The network from the numeric features' `[batch, n]` z-scores (`features` order) and each
    categorical feature's `[batch, 1]` indices to its prediction, through `layers` (by name).

    The one definition of the network's graph: `build_model` calls it on Keras inputs, and the raw
    signature (`device_output`) on the z-score matrix its preprocessing computes, so a device model
    carries no per-feature split and concatenation between the two."""
    encoded = [layers[NUMERIC_CLIP](z_scores)] if z_scores is not None else []
    numeric = [feature for feature in features if not feature.is_categorical]
    bucketed = [f"{layer_name(feature.name)}_bucket" in layers for feature in numeric]
    columns = tf.split(z_scores, len(numeric), axis=1) if any(bucketed) and len(numeric) > 1 else [z_scores]
    for feature in features:
        layer = layer_name(feature.name)
        if feature.is_categorical:
            encoded.append(layers[f"{layer}_flat"](layers[f"{layer}_embedding"](categorical[feature.name])))
        elif f"{layer}_bucket" in layers:
            bucket = layers[f"{layer}_bucket"](columns[numeric.index(feature)])
            encoded.append(layers[f"{layer}_bucket_flat"](layers[f"{layer}_bucket_embedding"](bucket)))
    hidden = layers["features"](encoded) if len(encoded) > 1 else encoded[0]
    depth = 0
    while f"dense_{depth}" in layers:
        hidden = layers[f"dense_{depth}"](hidden)
        if f"dropout_{depth}" in layers:
            hidden = layers[f"dropout_{depth}"](hidden)
        depth += 1
    if STANDARDIZED_PREDICTIONS in layers:
        standardized = layers[STANDARDIZED_PREDICTIONS](hidden)
        scaled = layers[LOG_PREDICTIONS] if LOG_PREDICTIONS in layers else layers[PREDICTIONS_KEY]
        return scaled(standardized)
    return layers[PREDICTIONS_KEY](hidden)


def device_output(
    model: keras.Model,
    features: list[FeatureInput],
    z_scores: tf.Tensor | None,
    categorical: dict[str, tf.Tensor],
) -> tf.Tensor:
    """What `model` (built by `build_model`, trained, maybe put back in label units by `in_label_units`)
    predicts from the z-score matrix and the categorical indices directly (see `network_output`)."""
    layers = {layer.name: layer for layer in model.layers}
    output = network_output(layers, features, z_scores, categorical)
    back = layers.get(PREDICTIONS_KEY)
    return back(output) if isinstance(back, LogToLabelUnits) else output


def in_label_units(model: keras.Model, training: TrainingSpec) -> keras.Model:
    """What is exported: a model trained on log(1 + label) gets a last layer back to the label's units
    (sharing its weights), so TF Serving, TFLite, TF.js and every gate see predictions in those units."""
    if training.label_scale == "linear":
        return model
    prediction = LogToLabelUnits(name=PREDICTIONS_KEY)(model.output)
    return keras.Model(inputs=model.input, outputs=prediction)


def training_labels(labels: np.ndarray, training: TrainingSpec) -> np.ndarray:
    """What a regression network is fitted to: the labels, or log(1 + label) on the log scale."""
    return np.log1p(labels) if training.label_scale == "log" else labels


def target_scale(labels: np.ndarray) -> tuple[float, float]:
    """(mean, standard deviation) of regression labels; a constant label keeps a scale of 1."""
    std = float(np.std(labels))
    return float(np.mean(labels)), std if std > 0 else 1.0


def compile_model(model: keras.Model, spec: ProblemSpec, training: TrainingSpec | None = None) -> None:
    """Adam, the task's loss and metrics; traced without AutoGraph (see `skip_autograph`)."""
    training = training or spec.training
    skip_autograph(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=training.learning_rate),
        loss=head_for(spec.task, model.output_shape[-1]).loss,
        metrics=training_metrics(spec.task, training.label_scale),
    )
