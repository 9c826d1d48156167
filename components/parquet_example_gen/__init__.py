"""ParquetExampleGen: Parquet files into tf.Examples, keeping zeros (TFX's parquet executor drops them)."""

from components.parquet_example_gen.component import ParquetExampleGen

__all__ = ["ParquetExampleGen"]
