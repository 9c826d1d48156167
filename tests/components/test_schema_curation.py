"""CuratedSchemaGen's rules on a schema TFDV infers from real statistics."""

from __future__ import annotations

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from components.core.spec import load_spec
from components.curated_schema_gen.executor import MissingColumnError, curate_schema
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
