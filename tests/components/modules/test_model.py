"""The task type decides the last layer and the loss (DESIGN.md's table)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow.lite.tools import flatbuffer_utils

from components.core.spec import ProblemSpec, TaskType
from components.modules.model_builder import (
    FeatureInput,
    build_model,
    device_output,
    head_for,
    in_label_units,
    quantile_edges,
)

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


def test_the_device_path_is_the_trained_network_on_the_z_score_matrix():
    """`device_output` (what the raw signature and so every device model runs) gives the predictions of
    the model it reads, from one `[batch, n]` z-score matrix: with quantile buckets, categorical
    embeddings and a regression head put back in label units on the log scale."""
    spec = spec_for("regression", "y", "mse")
    training = spec.training.model_copy(update={"numeric_encoding": "buckets", "label_scale": "log"})
    features = [
        FeatureInput("fare", edges=(-0.5, 0.0, 0.5)),
        FeatureInput("company", buckets=5),
        FeatureInput("trip miles", edges=(-1.0, 1.0)),
    ]
    model = in_label_units(build_model(features, spec, training=training, target_scale=(1.0, 0.5)), training)
    fare, miles = np.array([[-1.0], [0.2], [0.7]], "float32"), np.array([[2.0], [-3.0], [0.0]], "float32")
    company = np.array([[0], [4], [2]])
    expected = model.predict({"fare": fare, "company": company, "trip miles": miles}, verbose=0)
    z_scores = tf.constant(np.concatenate([fare, miles], axis=1))
    answered = device_output(model, features, z_scores, {"company": tf.constant(company)})
    np.testing.assert_allclose(answered.numpy(), expected, rtol=1e-6)


def test_a_column_constant_in_training_gets_no_bucket_under_the_bucket_encoding():
    """The taxi table's pickup_census_tract is missing in 15,001 of 15,002 rows, so after imputation it is
    one value in training and has no quantile edges: the five-line taxi spec's tuner chose the bucket
    encoding and every such trial failed. The column keeps its z-score and gets no bucket; the device path
    still gives the model's predictions. Edges never computed are still a programming error."""
    spec = spec_for("binary", "y", "auc")
    training = spec.training.model_copy(update={"numeric_encoding": "buckets"})
    tract = quantile_edges(np.zeros(1000, np.float32))
    assert tract == ()
    features = [
        FeatureInput("fare", edges=(-0.5, 0.0, 0.5)),
        FeatureInput("pickup_census_tract", edges=tract),
    ]
    model = build_model(features, spec, training=training)
    names = {layer.name for layer in model.layers}
    assert "fare_bucket" in names and not any(name.startswith("pickup_census_tract_bucket") for name in names)
    fare, tract_z = np.array([[-1.0], [0.2], [0.7]], "float32"), np.zeros((3, 1), "float32")
    expected = model.predict({"fare": fare, "pickup_census_tract": tract_z}, verbose=0)
    answered = device_output(model, features, tf.constant(np.concatenate([fare, tract_z], axis=1)), {})
    np.testing.assert_allclose(answered.numpy(), expected, rtol=1e-6)

    with pytest.raises(ValueError, match="'fare': the bucket encoding needs its training quantiles"):
        build_model([FeatureInput("fare")], spec, training=training)


def test_a_device_model_of_64_numeric_columns_has_no_per_column_ops():
    """The raw signature hands the network its z-score matrix as it is: the converted model is the clip
    and the dense layers, whatever the number of columns (no split into 64 inputs and concatenation)."""
    spec = spec_for("binary", "y", "auc")
    features = [FeatureInput(f"pixel_{i}") for i in range(64)]
    model = build_model(features, spec)
    z_scores = np.random.default_rng(0).normal(size=(5, 64)).astype("float32")
    expected = model.predict({f"pixel_{i}": z_scores[:, i : i + 1] for i in range(64)}, verbose=0)

    @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="z_scores")])
    def serve(matrix: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"predictions": device_output(model, features, matrix, {})}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    flatbuffer = converter.convert()
    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    ops = [flatbuffer_utils.opcode_to_name(graph, op.opcodeIndex) for op in graph.subgraphs[0].operators]
    assert not {"SPLIT", "CONCATENATION", "RESHAPE"} & set(ops), ops
    assert len(graph.subgraphs[0].tensors) < 20, len(graph.subgraphs[0].tensors)
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    answered = interpreter.get_signature_runner()(z_scores=z_scores)
    np.testing.assert_allclose(answered["predictions"], expected, rtol=1e-5, atol=1e-6)
