"""The task type decides the last layer and the loss (DESIGN.md's table)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow.lite.tools import flatbuffer_utils

from components.core.spec import ProblemSpec, TaskType
from components.modules.model_builder import FeatureInput, build_model, head_for

FEATURES = [FeatureInput("fare"), FeatureInput("company", buckets=5)]


def spec_for(task: str, label, metric: str) -> ProblemSpec:
    return ProblemSpec.model_validate(
        {
            "name": "unit",
            "data": {"source": "/dev/null"},
            "label": label,
            "task": task,
            "metric": {"name": metric, "threshold": 0.5},
            "training": {"hidden_units": [8], "dropout": 0.2},
        }
    )


@pytest.mark.parametrize(
    ("task", "label", "metric", "outputs", "activation", "loss"),
    [
        ("binary", "y", "auc", 1, "sigmoid", "binary_crossentropy"),
        ("multiclass", "y", "accuracy", 3, "softmax", "sparse_categorical_crossentropy"),
        ("multilabel", ["a", "b"], "auc", 2, "sigmoid", "binary_crossentropy"),
        ("regression", "y", "mse", 1, "linear", "mse"),
    ],
)
def test_head_follows_the_task(task, label, metric, outputs, activation, loss):
    spec = spec_for(task, label, metric)
    head = head_for(spec.task, outputs)
    assert (head.units, head.loss) == (outputs, loss)
    model = build_model(FEATURES, spec, outputs=outputs)
    last = model.get_layer("predictions")
    assert last.units == outputs
    assert last.activation.__name__ == activation
    assert model.loss == loss
    batch = {"fare": np.zeros((4, 1), "float32"), "company": np.array([[0], [1], [4], [2]])}
    predictions = model.predict(batch, verbose=0)
    assert predictions.shape == (4, outputs)
    if activation == "softmax":
        assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5)
    if activation == "sigmoid":
        assert np.all((predictions > 0) & (predictions < 1))


def test_dropout_and_widths_come_from_the_spec():
    model = build_model(FEATURES, spec_for("binary", "y", "auc"))
    assert [layer.units for layer in model.layers if layer.name.startswith("dense_")] == [8]
    assert model.get_layer("dropout_0").rate == pytest.approx(0.2)
    assert head_for(TaskType.BINARY, 1).activation == "sigmoid"


def test_embeddings_reach_the_dense_layers_without_run_time_shape_ops(tmp_path):
    """Each embedding's [batch, 1, size] is squeezed, not reshaped: Keras' Reshape computes the batch size
    at run time, which put SHAPE, STRIDED_SLICE and PACK into device models for every embedding (most of
    the taxi int8 model's graph). The model saves, loads and converts with the same predictions."""
    spec = spec_for("binary", "y", "auc")
    buckets = spec.training.model_copy(update={"numeric_encoding": "buckets"})
    features = [FeatureInput("fare", edges=(-0.5, 0.0, 0.5)), FeatureInput("company", buckets=5)]
    model = build_model(features, spec, training=buckets)
    batch = {"fare": np.array([[-1.0], [0.2], [0.7]], "float32"), "company": np.array([[0], [4], [2]])}
    expected = model.predict(batch, verbose=0)
    model.save(tmp_path / "model")
    loaded = keras.models.load_model(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict(batch, verbose=0), expected, rtol=1e-6)

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    flatbuffer = converter.convert()
    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    ops = {flatbuffer_utils.opcode_to_name(graph, op.opcodeIndex) for op in graph.subgraphs[0].operators}
    assert "GATHER" in ops and not ops & {"SHAPE", "STRIDED_SLICE", "PACK"}, ops
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner()
    answered = runner(
        **{key: value.astype(np.float32 if key == "fare" else np.int64) for key, value in batch.items()}
    )
    np.testing.assert_allclose(next(iter(answered.values())), expected, rtol=1e-5, atol=1e-6)
