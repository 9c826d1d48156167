"""preprocessing_fn on a small in-memory dataset, checked value by value with TF Transform on Beam."""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.core.spec import ProblemSpec, TaskType
from components.modules.preprocessing_fn import (
    LABEL_CLASSES_VOCABULARY,
    MISSING_INDEX,
    prepare_label,
    preprocessing_fn,
    vocabulary_name,
)

FARES = [10.0, None, 20.0, 30.0, None, 80.0]  # present: 10, 20, 30, 80 -> mean 35
COMPANIES = ["Flash", "Yellow", None, "Flash", "Flash", "Yellow"]
HOURS = [7, 7, 8, None, 7, 9]  # an integer column declared categorical
LABELS = [0, 1, 0, 1, 1, 0]

RAW_SCHEMA = schema_utils.schema_from_feature_spec(
    {
        "fare": tf.io.VarLenFeature(tf.float32),
        "company": tf.io.VarLenFeature(tf.string),
        "hour": tf.io.VarLenFeature(tf.int64),
        "big_tipper": tf.io.FixedLenFeature([1], tf.int64),
    }
)


def spec_config(numeric_missing: str = "mean", oov_buckets: int = 1) -> dict:
    return ProblemSpec.model_validate(
        {
            "name": "unit",
            "data": {"source": "/dev/null"},
            "label": "big_tipper",
            "task": "binary",
            "features": {"fare": "numeric", "company": "auto", "hour": "categorical"},
            "metric": {"name": "auc", "threshold": 0.5},
            "preprocessing": {
                "numeric_missing": numeric_missing,
                "vocabulary": {"oov_buckets": oov_buckets},
            },
        }
    ).to_config()


def rows(fares, companies, hours, labels) -> list[dict]:
    out = []
    for fare, company, hour, label in zip(fares, companies, hours, labels, strict=True):
        out.append(
            {
                "fare": [] if fare is None else [fare],
                "company": [] if company is None else [company.encode()],
                "hour": [] if hour is None else [hour],
                "big_tipper": [label],
            }
        )
    return out


def analyze_and_transform(
    config: dict, serving_rows: list[dict] | None = None, train: list[dict] | None = None
):
    """Analyzes `train` (default FARES/COMPANIES/HOURS), transforms it (and `serving_rows` with the
    same graph)."""
    metadata = dataset_metadata.DatasetMetadata(RAW_SCHEMA)
    with tempfile.TemporaryDirectory() as temp, tft_beam.Context(temp_dir=temp):
        train = train if train is not None else rows(FARES, COMPANIES, HOURS, LABELS)
        (transformed, _), transform_fn = (train, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"problem_spec": config})
        )
        output = tempfile.mkdtemp()
        _ = transform_fn | tft_beam.WriteTransformFn(output)
        served = None
        if serving_rows is not None:
            served, _ = ((serving_rows, metadata), transform_fn) | tft_beam.TransformDataset()
    return transformed, tft.TFTransformOutput(output), served


@pytest.fixture(scope="module")
def mean_run():
    unseen = rows([45.0], ["Checker"], [23], [0])
    return analyze_and_transform(spec_config(), serving_rows=unseen)


def test_numeric_missing_becomes_the_mean_then_z_score(mean_run):
    transformed, _, _ = mean_run
    present = [f for f in FARES if f is not None]
    mean, std = np.mean(present), np.std(present)  # population sd, as tft.var
    for fare, row in zip(FARES, transformed, strict=True):
        expected = 0.0 if fare is None else (fare - mean) / std
        assert row["fare"] == pytest.approx([expected], abs=1e-5)


def test_z_scores_have_mean_zero_over_the_present_values(mean_run):
    transformed, _, _ = mean_run
    z = [row["fare"][0] for row, fare in zip(transformed, FARES, strict=True) if fare is not None]
    assert np.mean(z) == pytest.approx(0.0, abs=1e-6)
    assert np.std(z) == pytest.approx(1.0, abs=1e-5)


def test_categorical_vocabulary_with_explicit_missing_category(mean_run):
    transformed, tft_output, _ = mean_run
    vocabulary = [v.decode() for v in tft_output.vocabulary_by_name(vocabulary_name("company"))]
    assert vocabulary == ["Flash", "Yellow"]  # most frequent first
    for company, row in zip(COMPANIES, transformed, strict=True):
        expected = MISSING_INDEX if company is None else 1 + vocabulary.index(company)
        assert row["company"].tolist() == [expected]


def test_integer_categories_are_indexed_as_text(mean_run):
    transformed, tft_output, _ = mean_run
    vocabulary = [v.decode() for v in tft_output.vocabulary_by_name(vocabulary_name("hour"))]
    assert vocabulary[0] == "7" and sorted(vocabulary) == ["7", "8", "9"]
    for hour, row in zip(HOURS, transformed, strict=True):
        expected = MISSING_INDEX if hour is None else 1 + vocabulary.index(str(hour))
        assert row["hour"].tolist() == [expected]


def test_unseen_category_goes_to_the_oov_bucket(mean_run):
    _, _, served = mean_run
    (row,) = served
    assert row["company"].tolist() == [1 + 2]  # missing + 2 known -> first OOV index is 3
    assert row["hour"].tolist() == [1 + 3]


def test_label_passes_through(mean_run):
    transformed, _, _ = mean_run
    assert [row["big_tipper"].tolist() for row in transformed] == [[v] for v in LABELS]


def test_median_imputation():
    transformed, _, _ = analyze_and_transform(spec_config(numeric_missing="median"))
    present = [f for f in FARES if f is not None]
    mean, std = np.mean(present), np.std(present)
    missing_z = [row["fare"][0] for row, fare in zip(transformed, FARES, strict=True) if fare is None]
    # The approximate median of 10, 20, 30, 80 lies between 20 and 30, away from the mean.
    for z in missing_z:
        assert (20 - mean) / std - 1e-5 <= z <= (30 - mean) / std + 1e-5
        assert not math.isclose(z, 0.0, abs_tol=1e-3)


def test_the_same_values_in_another_order_give_bit_identical_z_scores():
    """Beam may sum a column in other bundles on another run; the transform must not depend on it.
    Longitude-like values (a large mean, a small spread) are where float32 sums would differ."""
    values = np.random.default_rng(0).normal(-87.63, 0.05, 3000).astype(np.float32).tolist()
    count = len(values)
    z_by_value = []
    for order in (values, values[::-1], sorted(values)):
        train = rows(order, ["Flash"] * count, [7] * count, [0, 1] * (count // 2))
        transformed, _, _ = analyze_and_transform(spec_config(), train=train)
        z_by_value.append({value: row["fare"][0] for value, row in zip(order, transformed, strict=True)})
    assert z_by_value[0] == z_by_value[1] == z_by_value[2]


def test_a_binary_label_written_as_text_becomes_0_or_1():
    column = tf.constant(["Yes", "no", " YES ", "No"])
    assert prepare_label(column, TaskType.BINARY).numpy().ravel().tolist() == [1, 0, 1, 0]
    names = tf.constant(["malignant", "benign", "Malignant"])
    assert prepare_label(names, TaskType.BINARY, "malignant").numpy().ravel().tolist() == [1, 0, 1]
    assert prepare_label(tf.constant([1, 0]), TaskType.BINARY).numpy().ravel().tolist() == [1, 0]


def multiclass_labels(values: list, dtype: tf.DType) -> tuple[list[int], list[str]]:
    """(class ids, label vocabulary) TF Transform gives a multiclass label column."""
    schema = schema_utils.schema_from_feature_spec({"species": tf.io.FixedLenFeature([1], dtype)})
    data = [{"species": [v.encode() if isinstance(v, str) else v]} for v in values]
    with tempfile.TemporaryDirectory() as temp, tft_beam.Context(temp_dir=temp):
        (transformed, _), transform_fn = (
            data,
            dataset_metadata.DatasetMetadata(schema),
        ) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: {"species": prepare_label(inputs["species"], TaskType.MULTICLASS)}
        )
        output = tempfile.mkdtemp()
        _ = transform_fn | tft_beam.WriteTransformFn(output)
    vocabulary = tft.TFTransformOutput(output).vocabulary_by_name(LABEL_CLASSES_VOCABULARY)
    return [int(row["species"][0]) for row in transformed], [v.decode() for v in vocabulary]


def test_multiclass_labels_by_name_or_any_integer_get_class_ids_from_the_training_vocabulary():
    ids, classes = multiclass_labels(["virginica", "setosa", "setosa", "versicolor", "setosa"], tf.string)
    assert classes[0] == "setosa"  # most frequent first
    assert sorted(classes) == ["setosa", "versicolor", "virginica"]
    assert [classes[i] for i in ids] == ["virginica", "setosa", "setosa", "versicolor", "setosa"]
    ids, classes = multiclass_labels([8, 3, 5, 3], tf.int64)  # wine quality: not 0..K-1
    assert [classes[i] for i in ids] == ["8", "3", "5", "3"] and len(classes) == 3


def test_a_multilabel_column_of_yes_no_becomes_0_or_1():
    column = tf.constant(["yes", "No", "TRUE", "false"])
    assert prepare_label(column, TaskType.MULTILABEL).numpy().ravel().tolist() == [1, 0, 1, 0]


def test_a_binary_label_of_two_other_numbers_is_1_where_it_is_the_positive_class():
    codes = tf.constant([2, 4, 4, 2], tf.int64)  # the Wisconsin file: benign 2, malignant 4
    assert prepare_label(codes, TaskType.BINARY, "4").numpy().ravel().tolist() == [0, 1, 1, 0]
