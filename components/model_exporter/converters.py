"""Conversions of the `serving_raw` signature: TFLite (TFLiteConverter) and TF.js (tensorflowjs).

TFX's own TFLite and TF.js rewriters are not used: the TFLite one deletes `assets/` and ignores
converter options, the TF.js one takes no options (STACK.md).
"""

from __future__ import annotations

import copy
import glob
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from components.core.artifacts import RAW_SIGNATURE
from components.modules.signatures import RAW_CONSTANT_PREFIX, model_variables

RepresentativeRows = Callable[[], Iterator[dict[str, np.ndarray]]]
MODEL_JSON = "model.json"  # a TF.js graph model: its graph and its weights manifest
WEIGHTS_MANIFEST = "weightsManifest"
# The raw-feature preprocessing of `serving_raw` (components/modules/signatures.RawTransform: raw columns
# stacked and scaled, the z-score matrix handed to the network as it is), the model's clip and quantile
# buckets (the z-scores split for them; a shifted comparison would move a bucket edge), and a log-scale
# label's way back to its units (256 levels over a label's whole range are too coarse). A stack of raw
# columns quantized together would share one scale across dollars and seconds.
FLOAT_PREPROCESSING_OPS = [
    "CONCATENATION",
    "SPLIT",
    "ZEROS_LIKE",
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


def write_raw_only_saved_model(loaded: Any, destination: str) -> None:
    """A SavedModel holding only the raw-feature signature of `loaded` (a loaded SavedModel) and what it uses.

    The full model also holds TF Transform's vocabulary tables (for `serving_default`); tensorflowjs
    assumes every table in a SavedModel belongs to the signature it converts, and fails otherwise. It is
    also what TFLite converts: the same `serving_raw` graph (the same predictions), loaded and imported in
    a third of the time of the full model.
    """
    raw = loaded.signatures[RAW_SIGNATURE]
    holder = tf.Module()
    holder.raw_transform = loaded.raw_transform  # the in-graph vocabulary tables
    holder.model_variables = model_variables(loaded)
    holder.serve_raw = raw
    tf.saved_model.save(holder, destination, signatures={RAW_SIGNATURE: raw})


def tflite_converter(saved_model_dir: str) -> tf.lite.TFLiteConverter:
    """A TFLite converter of the `serving_raw` signature, for `to_tflite` to copy for each variant.

    `from_saved_model` loads the whole SavedModel in Python: loaded once, every variant converts it.
    """
    return tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[RAW_SIGNATURE])


def to_tflite(
    loaded: tf.lite.TFLiteConverter, variant: str, representative_rows: RepresentativeRows
) -> bytes:
    """float32, dynamic (int8 weights, float activations) or int8 (weights and activations), converted
    from a copy of `loaded` (`tflite_converter`): each variant's options are its own, the model is shared.

    Only TFLite builtin ops are allowed: a model that would need Flex (TensorFlow) ops fails here.
    """
    if variant not in ("float32", "dynamic", "int8"):
        raise ValueError(f"unknown TFLite variant '{variant}'")
    converter = copy.copy(loaded)
    converter.target_spec = tf.lite.TargetSpec(supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS])
    converter.optimizations = [tf.lite.Optimize.DEFAULT] if variant in ("dynamic", "int8") else []
    converter.representative_dataset = None
    if variant == "int8":
        return without_tensor_names(_full_integer(converter, representative_rows))
    return without_tensor_names(converter.convert())


def without_tensor_names(flatbuffer: bytes) -> bytes:
    """The model without its tensors' names (TensorFlow's node paths, and the quantizer's longer ones).

    A signature finds its inputs and outputs by tensor index under its own keys, which stay: the names
    are for debugging, and they were more than half of the 64-column digits model's int8 file.
    TensorFlow's `flatbuffer_utils.strip_strings` also drops the signatures, which every caller uses.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


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


def to_tfjs(raw_only_saved_model_dir: str, destination: Path) -> None:
    """A TF.js graph model with float32 weights; `quantize_tfjs` makes the float16 and uint8 ones from it."""
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    destination.mkdir(parents=True, exist_ok=True)
    tf_saved_model_conversion_v2.convert_tf_saved_model(
        raw_only_saved_model_dir,
        str(destination),
        signature_def=RAW_SIGNATURE,
        saved_model_tags="serve",
    )


def quantize_tfjs(float32_model: Path, destination: Path, variant: str) -> None:
    """A copy of a float32 TF.js graph model (`to_tfjs`) with float16 or uint8 weights.

    tensorflowjs quantizes a graph model's weights only when it writes them (`write_weights`), after the
    graph is converted and optimized; the graph itself is the float32 model's. So rewriting the float32
    model's weights writes the files converting the SavedModel again with that quantization would, without
    freezing and optimizing the graph a second time. The raw signature's per-column constants
    (`RAW_CONSTANT_PREFIX`) stay float32, as FLOAT_PREPROCESSING_OPS keeps them in TFLite int8.
    """
    from tensorflowjs import read_weights, write_weights

    if variant not in ("float16", "uint8"):
        raise ValueError(f"unknown quantized TF.js variant '{variant}'")
    model = json.loads((float32_model / MODEL_JSON).read_text())
    groups = read_weights.read_weights(model[WEIGHTS_MANIFEST], str(float32_model))
    quantized = [  # names as tensorflowjs reads them: patterns, so escaped to match only themselves
        glob.escape(e["name"]) for group in groups for e in group if RAW_CONSTANT_PREFIX not in e["name"]
    ]
    destination.mkdir(parents=True, exist_ok=True)
    model[WEIGHTS_MANIFEST] = write_weights.write_weights(
        groups, str(destination), write_manifest=False, quantization_dtype_map={variant: quantized}
    )
    (destination / MODEL_JSON).write_text(json.dumps(model))


def size_bytes(path: Path) -> int:
    """A file's size, or the total size of the files under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
