"""ParquetExampleGen: a FileBasedExampleGen over Parquet files, as TFX's own CsvExampleGen is one over CSV."""

from __future__ import annotations

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components.parquet_example_gen.executor import Executor


class ParquetExampleGen(FileBasedExampleGen):
    """Reads Parquet files (spans, splits and hashing as any FileBasedExampleGen) into tf.Examples:
    integers as int64, floats as float, text as bytes, timestamps and dates as ISO-8601 text; a null
    (or a NaN float) is a missing value."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
