"""The tf_keras model built from the spec: inputs from the transformed features, head from the task."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class FeatureInput:
    """One transformed feature: numeric (a z-score) or categorical (an index below `buckets`)."""

    name: str
    buckets: int = 0  # 0 for a numeric feature

    @property
    def is_categorical(self) -> bool:
        return self.buckets > 0


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


def training_metrics(task: TaskType) -> list[keras.metrics.Metric]:
    if task in (TaskType.BINARY, TaskType.MULTILABEL):
        return [keras.metrics.AUC(name="auc", multi_label=task == TaskType.MULTILABEL)]
    if task == TaskType.MULTICLASS:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
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
    """A dense network over the transformed features, with the head the task needs.

    `target_scale` (regression only): the training label's (mean, standard deviation)."""
    training = training or spec.training
    inputs: dict[str, keras.Input] = {}
    encoded = []
    for feature in features:
        # Keras matches a dict of inputs by its keys; layer names must be TensorFlow scope names.
        layer = layer_name(feature.name)
        if feature.is_categorical:
            layer_input = keras.Input(shape=(1,), name=layer, dtype=tf.int64)
            size = embedding_size(feature.buckets)
            embedded = keras.layers.Embedding(feature.buckets, size, name=f"{layer}_embedding")(layer_input)
            encoded.append(keras.layers.Reshape((size,), name=f"{layer}_flat")(embedded))
        else:
            layer_input = keras.Input(shape=(1,), name=layer, dtype=tf.float32)
            encoded.append(ClipValues(Z_CLIP, name=f"{layer}_clip")(layer_input))
        inputs[feature.name] = layer_input
    hidden = keras.layers.Concatenate(name="features")(encoded) if len(encoded) > 1 else encoded[0]
    regularizer = (
        keras.regularizers.L1L2(l1=training.l1, l2=training.l2) if training.l1 or training.l2 else None
    )
    for depth, units in enumerate(training.hidden_units):
        hidden = keras.layers.Dense(
            units, activation="relu", kernel_regularizer=regularizer, name=f"dense_{depth}"
        )(hidden)
        if training.dropout:
            hidden = keras.layers.Dropout(training.dropout, name=f"dropout_{depth}")(hidden)
    head = head_for(spec.task, outputs)
    if spec.task == TaskType.REGRESSION and target_scale is not None:
        # The network predicts a standardized target; the last layer puts it back in the label's units,
        # so a target in the hundreds does not take thousands of steps just to reach its scale.
        mean, std = target_scale
        standardized = keras.layers.Dense(1, name=f"{PREDICTIONS_KEY}_standardized")(hidden)
        prediction = keras.layers.Rescaling(scale=std, offset=mean, name=PREDICTIONS_KEY)(standardized)
    else:
        prediction = keras.layers.Dense(head.units, activation=head.activation, name=PREDICTIONS_KEY)(hidden)
    model = keras.Model(inputs=inputs, outputs=prediction)
    compile_model(model, spec, training)
    return model


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
        metrics=training_metrics(spec.task),
    )
