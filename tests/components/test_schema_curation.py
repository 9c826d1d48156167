"""CuratedSchemaGen's rules on a schema TFDV infers from real statistics."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from components.core.artifacts import SCHEMA_FILE, binary_class_names, read_left_out
from components.core.spec import FeatureKind, TaskType, load_spec
from components.curated_schema_gen.executor import (
    ConstantLabelError,
    LabelValuesError,
    MissingColumnError,
    binary_number_domain,
    check_classes_seen_in_training,
    check_labels_vary,
    curate_schema,
    empty_columns,
    identifier_columns,
)
from tests.helpers.data import TAXI_SPEC


@pytest.fixture(scope="module")
def taxi_frame(taxi_slice) -> pd.DataFrame:
    return pd.read_csv(taxi_slice)


def inferred(frame: pd.DataFrame) -> schema_pb2.Schema:
    return tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(frame), infer_feature_shape=True)


def by_name(schema: schema_pb2.Schema) -> dict[str, schema_pb2.Feature]:
    return {f.name: f for f in schema.feature}


def test_label_is_required_with_binary_domain(taxi_frame):
    curated = by_name(curate_schema(inferred(taxi_frame), load_spec(TAXI_SPEC)))
    label = curated["big_tipper"]
    assert label.type == schema_pb2.INT
    assert label.presence.min_fraction == 1.0
    assert (label.int_domain.min, label.int_domain.max) == (0, 1)


def test_features_may_be_missing_and_categories_are_open(taxi_frame):
    curated = by_name(curate_schema(inferred(taxi_frame), load_spec(TAXI_SPEC)))
    for name in ("company", "payment_type", "pickup_latitude"):
        feature = curated[name]
        assert feature.presence.min_fraction == 0
        assert feature.value_count.max == 1
        assert not feature.HasField("shape")
    for name in ("company", "payment_type"):
        assert curated[name].WhichOneof("domain_info") is None, "any category is allowed"
    numeric = curated["pickup_latitude"]
    assert numeric.float_domain.disallow_nan and numeric.float_domain.disallow_inf


def test_excluded_and_unused_columns_are_deprecated(taxi_frame):
    curated = by_name(curate_schema(inferred(taxi_frame), load_spec(TAXI_SPEC)))
    for name in ("tips", "trip_start_timestamp", "pickup_census_tract"):
        assert curated[name].lifecycle_stage == schema_pb2.DEPRECATED, name
    assert curated["fare"].lifecycle_stage == schema_pb2.UNKNOWN_STAGE


def test_text_in_a_numeric_feature_is_flagged_by_validation(taxi_frame):
    broken = taxi_frame.copy()
    broken["fare"] = broken["fare"].astype(str)
    broken.loc[::5, "fare"] = "ten dollars"
    stats = tfdv.generate_statistics_from_dataframe(broken)
    curated = curate_schema(tfdv.infer_schema(stats), load_spec(TAXI_SPEC))
    assert by_name(curated)["fare"].type == schema_pb2.FLOAT
    anomalies = tfdv.validate_statistics(stats, curated)
    assert "fare" in anomalies.anomaly_info


def test_a_spec_column_with_no_values_is_a_clear_error(taxi_frame):
    frame = taxi_frame.drop(columns=["company"])
    with pytest.raises(MissingColumnError, match="column 'company' has no values"):
        curate_schema(inferred(frame), load_spec(TAXI_SPEC))


def test_a_column_with_no_value_in_training_is_left_out_with_the_reason(taxi_frame, tmp_path):
    """A column blank in every training row (taxi's pickup_census_tract in these trips; `NA` in every row
    reads the same): its mean would be NaN, so a five-line spec leaves it out and says why."""
    assert taxi_frame["pickup_census_tract"].isna().all()
    stats = tfdv.generate_statistics_from_dataframe(taxi_frame.astype({"pickup_census_tract": object}))
    empty = empty_columns(stats)
    reason = f"it has no value in any of the {len(taxi_frame)} training rows; fill it in to use it"
    assert empty == {"pickup_census_tract": reason}
    spec = load_spec(TAXI_SPEC)
    exclude = [name for name in spec.exclude if name != "pickup_census_tract"]
    spec = spec.model_copy(update={"features": None, "exclude": exclude})
    assert "pickup_census_tract" in spec.feature_columns(list(taxi_frame.columns))
    curated = curate_schema(tfdv.infer_schema(stats), spec, empty=empty)
    assert by_name(curated)["pickup_census_tract"].lifecycle_stage == schema_pb2.DEPRECATED
    assert by_name(curated)["fare"].lifecycle_stage == schema_pb2.UNKNOWN_STAGE
    io_utils.write_pbtxt_file(str(tmp_path / SCHEMA_FILE), curated)
    assert read_left_out(str(tmp_path)) == empty


def test_a_named_feature_with_no_value_in_training_is_a_clear_error(taxi_frame):
    stats = tfdv.generate_statistics_from_dataframe(taxi_frame.astype({"pickup_census_tract": object}))
    spec = load_spec(TAXI_SPEC)
    named = {**spec.features, "pickup_census_tract": FeatureKind.NUMERIC}
    exclude = [name for name in spec.exclude if name != "pickup_census_tract"]
    spec = spec.model_copy(update={"features": named, "exclude": exclude})
    with pytest.raises(
        MissingColumnError, match="column 'pickup_census_tract' has no values in the training"
    ):
        curate_schema(tfdv.infer_schema(stats), spec, empty=empty_columns(stats))


def examples_of(frame: pd.DataFrame) -> list[tf.train.Example]:
    """Each row as ExampleGen writes it: text as bytes, integers as int64, missing cells left out."""
    examples = []
    for row in frame.to_dict("records"):
        feature = {}
        for name, value in row.items():
            if isinstance(value, str):
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
            elif isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind == "i"):
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        examples.append(tf.train.Example(features=tf.train.Features(feature=feature)))
    return examples


@pytest.fixture(scope="module")
def with_identifiers(taxi_frame) -> pd.DataFrame:
    """Real trips plus what exports carry: an order code, a row number, and a unique but wide-ranged
    integer (seconds since an epoch) that is a real measurement, not an identifier."""
    frame = taxi_frame.copy()
    frame["order_code"] = [f"ORD-{index * 7919 % 100_003:06d}" for index in range(len(frame))]
    frame["row_number"] = list(range(1, len(frame) + 1))
    frame["seconds_since_launch"] = [index * 997 + index % 13 for index in range(len(frame))]
    return frame


def test_identifier_columns_are_found_with_their_reason(with_identifiers):
    spec = load_spec(TAXI_SPEC).model_copy(update={"features": None})
    schema = inferred(with_identifiers)
    found = identifier_columns(schema, spec, examples_of(with_identifiers))
    assert set(found) == {"order_code", "row_number"}, found
    assert "100% of its 3000 sampled training values are distinct" in found["order_code"]
    assert "packed like row numbers (1..3000)" in found["row_number"]
    assert all(reason.endswith("; name it in 'features' to use it anyway") for reason in found.values())


def test_a_column_named_in_features_is_never_an_identifier(with_identifiers):
    spec = load_spec(TAXI_SPEC)
    assert spec.features is not None
    assert identifier_columns(inferred(with_identifiers), spec, examples_of(with_identifiers)) == {}


def test_identifiers_are_deprecated_and_annotated(with_identifiers, tmp_path):
    spec = load_spec(TAXI_SPEC).model_copy(update={"features": None})
    reasons = {"order_code": "unique per row"}
    curated = curate_schema(inferred(with_identifiers), spec, reasons)
    assert by_name(curated)["order_code"].lifecycle_stage == schema_pb2.DEPRECATED
    assert by_name(curated)["row_number"].lifecycle_stage == schema_pb2.UNKNOWN_STAGE
    io_utils.write_pbtxt_file(str(tmp_path / SCHEMA_FILE), curated)
    assert read_left_out(str(tmp_path)) == reasons


def label_stats(values: list[str]):
    return tfdv.generate_statistics_from_dataframe(
        pd.DataFrame({"fare": range(len(values)), "outcome": values})
    )


def binary_spec(**changes):
    return load_spec(TAXI_SPEC).model_copy(update={"label": "outcome", "features": None, **changes})


def test_a_binary_text_label_needs_two_values_and_a_known_positive_one():
    check_labels_vary(label_stats(["Yes", "No"] * 20), binary_spec())
    check_labels_vary(label_stats(["malignant", "benign"] * 20), binary_spec(positive_class="malignant"))
    with pytest.raises(
        LabelValuesError, match=r"holds '(malignant|benign)', '(benign|malignant)': name the "
    ):
        check_labels_vary(label_stats(["malignant", "benign"] * 20), binary_spec())
    with pytest.raises(LabelValuesError, match="positive_class 'M' is not a value of label column"):
        check_labels_vary(label_stats(["malignant", "benign"] * 20), binary_spec(positive_class="M"))
    with pytest.raises(LabelValuesError, match="holds 3 distinct values .* a binary label needs two"):
        check_labels_vary(label_stats(["a", "b", "c"] * 20), binary_spec())
    with pytest.raises(ConstantLabelError, match="holds the single value 'no' in every training row"):
        check_labels_vary(label_stats(["no"] * 40), binary_spec())


def multiclass_spec():
    return binary_spec(
        task=TaskType.MULTICLASS, metric=load_spec(TAXI_SPEC).metric.model_copy(update={"name": "accuracy"})
    )


def test_a_multiclass_label_of_class_names_stays_text_in_the_schema():
    stats = label_stats(["setosa", "versicolor", "virginica"] * 20)
    check_labels_vary(stats, multiclass_spec())
    label = by_name(curate_schema(tfdv.infer_schema(stats, infer_feature_shape=True), multiclass_spec()))[
        "outcome"
    ]
    assert label.type == schema_pb2.BYTES and label.presence.min_fraction == 1.0
    with pytest.raises(ConstantLabelError, match="single value 'setosa'"):
        check_labels_vary(label_stats(["setosa"] * 40), multiclass_spec())


def test_multiclass_integer_labels_need_not_be_class_ids():
    stats = tfdv.generate_statistics_from_dataframe(
        pd.DataFrame({"fare": range(60), "outcome": [3, 5, 8] * 20})
    )
    label = by_name(curate_schema(tfdv.infer_schema(stats, infer_feature_shape=True), multiclass_spec()))[
        "outcome"
    ]
    assert label.type == schema_pb2.INT and not label.HasField("int_domain")


def test_a_multilabel_column_says_yes_or_no():
    spec = binary_spec(label=["outcome"], task=TaskType.MULTILABEL, metric=load_spec(TAXI_SPEC).metric)
    check_labels_vary(label_stats(["Yes", "no"] * 20), spec)
    check_labels_vary(label_stats(["TRUE", "false"] * 20), spec)
    with pytest.raises(LabelValuesError, match="says yes or no to its label: write it as 1/0"):
        check_labels_vary(label_stats(["red", "blue"] * 20), spec)


def test_a_class_that_training_never_saw_is_named_with_its_split_and_rows():
    seen = {"train": Counter({"Cash": 90, "Credit Card": 40}), "eval": Counter({"Cash": 9, "Prcard": 1})}
    check_classes_seen_in_training("payment_type", {"train": seen["train"], "eval": Counter({"Cash": 3})})
    with pytest.raises(
        LabelValuesError,
        match=r"label column 'payment_type': class 'Prcard' \(1 row in eval\) never appears in the train",
    ):
        check_classes_seen_in_training("payment_type", seen)


def test_a_binary_text_label_keeps_its_values_in_the_schema(tmp_path):
    stats = label_stats(["malignant", "benign"] * 20)
    spec = binary_spec(positive_class="malignant")
    curated = curate_schema(tfdv.infer_schema(stats, infer_feature_shape=True), spec)
    label = by_name(curated)["outcome"]
    assert label.type == schema_pb2.BYTES and label.presence.min_fraction == 1.0
    io_utils.write_pbtxt_file(str(tmp_path / SCHEMA_FILE), curated)
    assert binary_class_names(str(tmp_path), spec) == ["benign", "malignant"]


def test_a_binary_label_of_two_numbers_other_than_0_1_needs_its_positive_one(tmp_path):
    numbers = tfdv.generate_statistics_from_dataframe(
        pd.DataFrame({"fare": range(40), "outcome": [2, 4] * 20})
    )
    with pytest.raises(LabelValuesError, match="holds numbers from 2 to 4, not 0/1: .* positive_class: 4"):
        check_labels_vary(numbers, binary_spec())
    spec = binary_spec(positive_class="4")
    check_labels_vary(numbers, spec)
    counts = {"train": Counter({"2": 30, "4": 10}), "test": Counter({"4": 3})}
    assert binary_number_domain("outcome", counts, "4") == (2, 4)
    with pytest.raises(LabelValuesError, match="positive_class '1' is not a value of label column 'outcome'"):
        binary_number_domain("outcome", counts, "1")
    with pytest.raises(LabelValuesError, match="holds 3 distinct values \\(2, 3, 4\\)"):
        binary_number_domain("outcome", {**counts, "eval": Counter({"3": 1})}, "4")
    curated = curate_schema(tfdv.infer_schema(numbers, infer_feature_shape=True), spec, label_domain=(2, 4))
    label = by_name(curated)["outcome"]
    assert (label.int_domain.min, label.int_domain.max) == (2, 4)
    io_utils.write_pbtxt_file(str(tmp_path / SCHEMA_FILE), curated)
    assert binary_class_names(str(tmp_path), spec) == ["2", "4"]
