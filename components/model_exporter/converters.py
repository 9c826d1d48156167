"""Conversions of the `serving_raw` signature: TFLite (TFLiteConverter) and TF.js (tensorflowjs).

TFX's own TFLite and TF.js rewriters are not used: the TFLite one deletes `assets/` and ignores
converter options, the TF.js one takes no options (STACK.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from components.core.artifacts import RAW_SIGNATURE
from components.modules.signatures import model_variables

RepresentativeRows = Callable[[], Iterator[dict[str, np.ndarray]]]
# The raw-feature preprocessing of `serving_raw` (components/modules/signatures.RawTransform), the model's
# clip and quantile buckets (a shifted comparison would move a bucket edge), and a log-scale label's
# way back to its units (256 levels over a label's whole range are too coarse).
FLOAT_PREPROCESSING_OPS = [
    "SUB",
    "MUL",
    "ADD",
    "SELECT_V2",
    "FILL",
    "MINIMUM",
    "MAXIMUM",
    "GREATER_EQUAL",
    "EXP",
]


def write_raw_only_saved_model(saved_model_dir: str, destination: str) -> None:
    """A SavedModel holding only the raw-feature signature and what it uses.

    The full model also holds TF Transform's vocabulary tables (for `serving_default`); tensorflowjs
    assumes every table in a SavedModel belongs to the signature it converts, and fails otherwise.
    """
    loaded = tf.saved_model.load(saved_model_dir)
    raw = loaded.signatures[RAW_SIGNATURE]
    holder = tf.Module()
    holder.raw_transform = loaded.raw_transform  # the in-graph vocabulary tables
    holder.model_variables = model_variables(loaded)
    holder.serve_raw = raw
    tf.saved_model.save(holder, destination, signatures={RAW_SIGNATURE: raw})


def to_tflite(saved_model_dir: str, variant: str, representative_rows: RepresentativeRows) -> bytes:
    """float32, dynamic (int8 weights, float activations) or int8 (weights and activations).

    Only TFLite builtin ops are allowed: a model that would need Flex (TensorFlow) ops fails here.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[RAW_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant not in ("float32", "dynamic", "int8"):
        raise ValueError(f"unknown TFLite variant '{variant}'")
    if variant in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":
        return _full_integer(converter, representative_rows)
    return converter.convert()


def _full_integer(converter: tf.lite.TFLiteConverter, representative_rows: RepresentativeRows) -> bytes:
    """int8 weights and activations for the network (embeddings, dense layers), calibrated on training rows.

    The per-feature arithmetic on raw values in front of it (missing-value selects, centring and
    scaling seconds, dollars or degrees) stays float32: 256 levels over a raw column's whole range are
    too coarse for it, and it is a handful of scalar operations per row.
    """

    def calibration() -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        for row in representative_rows():
            # Text as fixed-width bytes: the calibrator misreads numpy object arrays (every category
            # looked missing, the calibrated ranges were wrong, and int8 lost 0.013 AUC on the taxi demo).
            yield RAW_SIGNATURE, {k: v.astype(np.bytes_) if v.dtype == object else v for k, v in row.items()}

    converter.representative_dataset = calibration
    # Ops without an int8 kernel (the string lookups) stay as they are.
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    selective = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=calibration,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=FLOAT_PREPROCESSING_OPS),
    )
    return selective.get_nondebug_quantized_model()


def to_tfjs(raw_only_saved_model_dir: str, destination: str, variant: str) -> None:
    """A TF.js graph model with float32, float16 or uint8 weights."""
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    quantization = {} if variant == "float32" else {variant: True}
    if variant not in ("float32", "float16", "uint8"):
        raise ValueError(f"unknown TF.js variant '{variant}'")
    Path(destination).mkdir(parents=True, exist_ok=True)
    tf_saved_model_conversion_v2.convert_tf_saved_model(
        raw_only_saved_model_dir,
        destination,
        signature_def=RAW_SIGNATURE,
        saved_model_tags="serve",
        quantization_dtype_map=quantization,
    )


def size_bytes(path: Path) -> int:
    """A file's size, or the total size of the files under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
