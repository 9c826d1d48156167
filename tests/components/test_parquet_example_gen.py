"""ParquetExampleGen's row conversion, on rows as Beam's ReadFromParquet yields them."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from components.parquet_example_gen.executor import to_example


def kinds(example) -> dict[str, tuple[str | None, list]]:
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return out


def test_zeros_stay_values_and_nulls_and_nans_are_missing(tmp_path):
    frame = pd.DataFrame(
        {
            "big_tipper": [0, 1],
            "fare": [0.0, np.nan],
            "company": ["", None],
            "area": pd.array([0, None], dtype="Int64"),
            "paid": [False, True],
            "pickup": [datetime.datetime(2016, 5, 16, 19, 45), None],
        }
    )
    frame.to_parquet(tmp_path / "rows.parquet")
    rows = pq.read_table(tmp_path / "rows.parquet").to_pylist()  # what ReadFromParquet yields
    first, second = (kinds(to_example(row)) for row in rows)
    assert first["big_tipper"] == ("int64_list", [0]) and second["big_tipper"] == ("int64_list", [1])
    assert first["fare"] == ("float_list", [0.0]) and second["fare"] == (None, [])
    assert first["company"] == ("bytes_list", [b""]) and second["company"] == (None, [])
    assert first["area"] == ("int64_list", [0]) and second["area"] == (None, [])
    assert first["paid"] == ("int64_list", [0]) and second["paid"] == ("int64_list", [1])
    assert first["pickup"] == ("bytes_list", [b"2016-05-16T19:45:00"]) and second["pickup"] == (None, [])
