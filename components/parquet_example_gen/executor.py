"""ParquetExampleGen executor: Beam's ReadFromParquet, then one tf.Example per row.

Not TFX's `parquet_executor`: its `dict_to_example` tests `if not value`, so every 0, 0.0 and empty
string becomes a missing value (a 0/1 label loses all its zeros), and a timestamp column fails.
"""

from __future__ import annotations

import datetime
import math
import os
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs


def _values(value: Any) -> list:
    """A cell as a list of plain values: [] for a null or a NaN."""
    if value is None:
        return []
    if isinstance(value, np.ndarray | list | tuple):
        return [v for item in value for v in _values(item)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return []
    if isinstance(value, datetime.datetime | datetime.date):
        return [value.isoformat()]
    return [value]


def to_example(row: dict[str, Any]) -> tf.train.Example:
    """One Parquet row as a tf.Example; a column whose cell is missing gets an empty feature."""
    features = {}
    for name, cell in row.items():
        values = _values(cell)
        if not values:
            features[name] = tf.train.Feature()
        elif all(isinstance(v, bool | int) for v in values):
            features[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        elif all(isinstance(v, int | float) for v in values):
            features[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            data = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values]
            features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=data))
    return tf.train.Example(features=tf.train.Features(feature=features))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ParquetToExample(pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str):  # noqa: N802 - TFX's naming of input PTransforms
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    return (
        pipeline
        | "ReadFromParquet" >> beam.io.ReadFromParquet(pattern)
        | "ToTFExample" >> beam.Map(to_example)
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 - TFX's method name
        return _ParquetToExample
