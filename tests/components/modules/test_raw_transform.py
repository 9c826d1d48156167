"""The raw-feature transform (what the raw signature and every device model run) against TF Transform,
on real taxi columns whose z-scores float32 cannot resolve near 0: census tracts (mean 1.7e10, sd 3e5)
and trip start times kept as plain Unix seconds (mean 1.4e9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from components.core.spec import ProblemSpec
from tests.helpers.transform import transform_and_raw

COLUMNS = {"dropoff_census_tract": tf.int64, "trip_start_timestamp": tf.int64, "pickup_latitude": tf.float32}


def test_the_raw_transform_z_scores_columns_with_large_means_as_transform_does(taxi_slice, tmp_path):
    """A five-line taxi spec keeps these columns as numbers: the map read off the graph had a slope of 0
    or one wrong by orders of magnitude, and serving_raw predicted up to 0.69 away from serving_default."""
    frame = pd.read_csv(taxi_slice).head(400)
    spec = ProblemSpec.model_validate(
        {
            "name": "unit",
            "data": {"source": "/dev/null"},
            "label": "big_tipper",
            "task": "binary",
            "features": {name: "numeric" for name in COLUMNS},
            "metric": {"name": "auc", "threshold": 0.5},
        }
    )
    feature_spec = {name: tf.io.VarLenFeature(dtype) for name, dtype in COLUMNS.items()}
    feature_spec["big_tipper"] = tf.io.FixedLenFeature([1], tf.int64)
    rows = [
        {
            **{
                name: [] if pd.isna(row[name]) else [int(row[name]) if dtype.is_integer else float(row[name])]
                for name, dtype in COLUMNS.items()
            },
            "big_tipper": [int(row["big_tipper"])],
        }
        for _, row in frame.iterrows()
    ]
    assert frame["dropoff_census_tract"].mean() > 1e10 and frame["dropoff_census_tract"].isna().any()
    transformed, raw = transform_and_raw(spec, feature_spec, rows, tmp_path)
    got = raw(
        {
            name: tf.constant(frame[name].to_numpy(np.float32).reshape(-1, 1))  # NaN = missing
            for name in COLUMNS
        }
    )
    for name in COLUMNS:
        want = np.array([row[name][0] for row in transformed])
        assert np.std(want) > 0.5, name
        np.testing.assert_allclose(got[name].numpy().ravel(), want, atol=2e-3, err_msg=name)
