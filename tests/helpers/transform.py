"""Blueprint's preprocessing_fn run by TF Transform on a few rows, and the raw-feature transform that the
raw signature (and so every device model) builds from the graph it wrote."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


def transform_and_raw(spec, feature_spec: dict[str, tf.io.VarLenFeature], rows: list[dict], folder: Path):
    """(TF Transform's output rows, the RawTransform read off the transform graph it wrote to `folder`)."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from components.modules.preprocessing_fn import preprocessing_fn
    from components.modules.signatures import RawTransform

    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
    with tft_beam.Context(temp_dir=str(folder / "temp")):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, {"problem_spec": spec.to_config()})
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(folder / "transform"))
        # What TFX's Transform writes beside the transform graph: the raw data's metadata.
        metadata_io.write_metadata(
            metadata, str(folder / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR)
        )
        return transformed, RawTransform(spec, tft.TFTransformOutput(str(folder / "transform")))
