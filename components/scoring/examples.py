"""Turning raw rows (as read from a CSV) into what each serving signature takes."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from components.core.artifacts import raw_input_columns
from components.modules.datetimes import unix_seconds


def _is_missing(value: str | None) -> bool:
    return value is None or value.strip() == ""


def to_tf_example(row: dict[str, str], raw_feature_spec: dict) -> bytes:
    """A serialized tf.Example with the types of the raw schema; empty cells are left out."""
    features = {}
    for name, spec in raw_feature_spec.items():
        value = row.get(name)
        if _is_missing(value):
            continue
        if spec.dtype == tf.string:
            features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif spec.dtype == tf.int64:
            features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(float(value))]))
        else:
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _category(cell: str, dtype: tf.DType) -> str:
    if dtype == tf.int64:
        return str(int(float(cell)))
    if dtype == tf.float32:
        return format(float(np.float32(cell)), "g")  # what tf.strings.as_string(shortest=True) writes
    return cell


def to_raw_inputs(rows: list[dict[str, str]], input_dtypes: dict[str, tf.DType], raw_feature_spec: dict):
    """`[n, 1]` arrays for the raw-feature signature: float32 (NaN = missing), text ("" = missing) or a
    date-time's int32 Unix seconds.

    Number columns used as categories are written the way TF Transform writes them: integers "7", not
    "7.0"; floats as `%g` writes them ("8" for 8.0, "1.5").
    """
    columns = raw_input_columns(raw_feature_spec)
    inputs = {}
    for name, dtype in input_dtypes.items():
        column = columns.get(name, name)
        values = [row.get(column) for row in rows]
        if dtype == tf.int32:  # a date-time: Unix seconds (see components/modules/datetimes.py)
            seconds = [unix_seconds(None if _is_missing(v) else v) for v in values]
            inputs[name] = np.array(seconds, dtype=np.int32).reshape(-1, 1)
        elif dtype == tf.string:
            text = ["" if _is_missing(v) else _category(v, raw_feature_spec[column].dtype) for v in values]
            inputs[name] = np.array(text, dtype=object).reshape(-1, 1)
        else:
            numbers = [math.nan if _is_missing(v) else float(v) for v in values]
            inputs[name] = np.array(numbers, dtype=np.float32).reshape(-1, 1)
    return inputs
