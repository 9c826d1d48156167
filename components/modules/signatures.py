"""The exported SavedModel's signatures.

- `serving_default`: serialized tf.Example in (what TF Serving clients send), TF Transform's graph, model;
  a classifier also returns classify-style `scores`, `classes` and `predicted_class` (class names as the
  data writes them, also saved as `assets.extra/class_names.json`).
- `serving_raw`: one `[None, 1]` tensor per feature, named `artifacts.raw_input_name(column)` (float32
  for numeric, string for categorical, int32 Unix seconds for a date-time); NaN, "" or
  `datetimes.MISSING_SECONDS` marks a missing value. The transform runs inside the graph with in-graph
  lookup tables (no vocabulary files) and integer calendar arithmetic, which is what TFLite and TF.js
  can convert and run.

The raw signature rebuilds the transform from what TF Transform learnt: the vocabularies it wrote, and
for each numeric feature the affine map from raw value to z-score, read off the transform graph itself
by transforming probe rows (see `probe_numeric_maps`). Tests check that both signatures agree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components.core.artifacts import (
    CLASS_NAMES_FILE,
    CLASSES_KEY,
    PREDICTED_CLASS_KEY,
    PREDICTIONS_KEY,
    RAW_SIGNATURE,
    SCORES_KEY,
    SERVING_SIGNATURE,
    TRANSFORMED_LABELS_SIGNATURE,
    binary_class_names_in,
    raw_input_name,
)
from components.core.spec import FeatureKind, ProblemSpec, TaskType
from components.modules import datetimes
from components.modules.model_builder import FeatureInput, device_output
from components.modules.preprocessing_fn import (
    LABEL_CLASSES_VOCABULARY,
    MISSING_INDEX,
    resolve_kind,
    vocabulary_name,
)

# The names of the raw signature's per-feature constants (center, scale, offset, missing) start with this:
# a converter must not quantize them (one uint8 scale over dollars and seconds is far too coarse).
RAW_CONSTANT_PREFIX = "blueprint_raw_"

# What the raw signature takes for each kind of feature (see the module docstring).
RAW_DTYPES = {
    FeatureKind.NUMERIC: tf.float32,
    FeatureKind.CATEGORICAL: tf.string,
    FeatureKind.DATETIME: tf.int32,
}


@dataclass(frozen=True)
class NumericMap:
    """z = (x - center) * scale + offset for a present value; `missing` for a missing one.

    `center` is a float32 value near the training mean, so `x - center` loses no precision even for
    features like latitudes (mean 41.9, sd 0.03) where `x * scale + shift` would cancel badly.
    """

    center: float
    scale: float
    offset: float
    missing: float


def raw_feature_kinds(spec: ProblemSpec, tft_output: tft.TFTransformOutput) -> dict[str, FeatureKind]:
    """Each feature the model uses, with its kind resolved against the raw schema."""
    raw_spec = tft_output.raw_feature_spec()
    chosen = spec.feature_columns(list(raw_spec))
    return {name: resolve_kind(kind, raw_spec[name].dtype) for name, kind in chosen.items()}


def scaled_outputs(spec: ProblemSpec, kinds: dict[str, FeatureKind]) -> dict[str, str]:
    """Each z-scored transformed feature -> the raw column it scales: every numeric feature, and with
    `preprocessing.datetime_elapsed` each date-time's elapsed time."""
    scaled = {name: name for name, kind in kinds.items() if kind == FeatureKind.NUMERIC}
    if spec.preprocessing.datetime_elapsed:
        for name, kind in kinds.items():
            if kind == FeatureKind.DATETIME:
                scaled[datetimes.elapsed_name(name)] = name
    return scaled


PROBE_SPAN = float(np.float32(1e12))  # a float32 value, so the slope divides by what Transform saw
DATETIME_PROBE_SPAN = 1e9  # seconds: 2001-09-09, a date ISO text can write


def probe_numeric_maps(spec: ProblemSpec, tft_output: tft.TFTransformOutput) -> dict[str, NumericMap]:
    """Reads each z-scored feature's affine transform off the TF Transform graph, in two rounds.

    Round one transforms 0, a far value (PROBE_SPAN; a date-time: 1e9 seconds) and a missing value: a
    rough slope and where z is 0. Round two transforms two float32 values around that point, where
    float32 arithmetic is exact enough to recover the map to about 1e-7 of a standard deviation. A
    date-time's elapsed time is probed with whole seconds (written as ISO text when the column is text).

    The far value must be at least as far from 0 as the column's mean: float32 z-scores near 0 and 1 of a
    column like census tracts (mean 1.7e10, sd 3e5: z about -56,000) or Unix seconds kept as a number are
    the same float32 value, and a slope read from them was 0 or wrong by orders of magnitude.
    """
    kinds = raw_feature_kinds(spec, tft_output)
    scaled = scaled_outputs(spec, kinds)
    raw_spec = tft_output.raw_feature_spec()
    spans = {
        output: DATETIME_PROBE_SPAN if kinds[column] == FeatureKind.DATETIME else PROBE_SPAN
        for output, column in scaled.items()
    }
    rough = _transform_probe(tft_output, kinds, scaled, {output: (0.0, spans[output]) for output in scaled})
    centers = {}
    for output, column in scaled.items():
        z0, z1, _ = rough[output]
        slope = (z1 - z0) / spans[output]
        center = -z0 / slope if slope else 0.0
        width = 1.0 / slope if slope else 1.0
        if raw_spec[column].dtype.is_integer or kinds[column] == FeatureKind.DATETIME:
            center, width = round(center), max(1, round(width))  # whole numbers the column can hold
        centers[output] = (float(np.float32(center)), float(np.float32(center + width)))
    fine = _transform_probe(tft_output, kinds, scaled, centers)
    maps = {}
    for output in scaled:
        za, zb, missing = fine[output]
        xa, xb = centers[output]
        scale = (zb - za) / (xb - xa) if xb != xa else 0.0
        maps[output] = NumericMap(center=xa, scale=scale, offset=za, missing=missing)
    return maps


def _transform_probe(
    tft_output: tft.TFTransformOutput,
    kinds: dict[str, FeatureKind],
    scaled: dict[str, str],
    values: dict[str, tuple[float, float]],
) -> dict[str, tuple[float, float, float]]:
    """TF Transform's output for three rows per scaled feature: values[0], values[1], missing. Each
    probe round asks one pair per raw column (a date-time's elapsed time is its only scaled output)."""
    raw_spec = tft_output.raw_feature_spec()
    pairs = {column: values[output] for output, column in scaled.items()}
    probe: dict[str, tf.SparseTensor] = {}
    for name in kinds:
        dtype = raw_spec[name].dtype
        if name in pairs:
            row_values = list(pairs[name])
            if kinds[name] == FeatureKind.DATETIME and dtype == tf.string:
                row_values = [datetimes.iso_text(round(v)) for v in row_values]
            else:  # whole numbers where the column holds them; a date-time's seconds are whole
                whole = dtype.is_integer or kinds[name] == FeatureKind.DATETIME
                row_values = np.array([round(v) if whole else v for v in row_values], dtype.as_numpy_dtype)
            probe[name] = tf.SparseTensor([[0, 0], [1, 0]], tf.constant(row_values, dtype), [3, 1])
        else:
            probe[name] = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.constant([], dtype), [3, 1])
    transformed = tft_output.transform_raw_features(probe, drop_unused_features=True)
    return {name: tuple(tf.reshape(transformed[name], [-1]).numpy().astype("float64")) for name in values}


class RawTransform(tf.Module):
    """The transform over raw `[None, 1]` feature tensors, with in-graph vocabulary tables."""

    def __init__(self, spec: ProblemSpec, tft_output: tft.TFTransformOutput):
        super().__init__(name="raw_transform")
        self.kinds = raw_feature_kinds(spec, tft_output)
        self.numeric = probe_numeric_maps(spec, tft_output)  # in `scaled_outputs` order
        oov_buckets = spec.preprocessing.vocabulary.oov_buckets
        self.tables = {}
        for name, kind in self.kinds.items():
            if kind == FeatureKind.CATEGORICAL:
                vocabulary = [
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                    for v in tft_output.vocabulary_by_name(vocabulary_name(name))
                ]
                self.tables[name] = _lookup_table(vocabulary, oov_buckets)

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        return {
            raw_input_name(name): tf.TensorSpec([None, 1], RAW_DTYPES[kind], raw_input_name(name))
            for name, kind in self.kinds.items()
        }

    def output_names(self) -> list[str]:
        """The transformed features the model takes (a date-time column gives three)."""
        names = []
        for name, kind in self.kinds.items():
            if kind == FeatureKind.DATETIME:
                names += [datetimes.part_name(name, part) for part in datetimes.PARTS]
                if datetimes.elapsed_name(name) in self.numeric:
                    names.append(datetimes.elapsed_name(name))
            else:
                names.append(name)
        return names

    def __call__(self, raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Every transformed feature as TF Transform writes it: a `[batch, 1]` tensor each."""
        indices, z_scores = self.encode(raw)
        if z_scores is not None:
            indices.update(zip(self.numeric, tf.split(z_scores, len(self.numeric), axis=1), strict=True))
        return indices

    def encode(self, raw: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], tf.Tensor | None]:
        """(each categorical feature's and date-time part's `[batch, 1]` indices, the z-scores of the
        scaled features as one `[batch, n]` matrix in `numeric` order, or None when there are none)."""
        out, unscaled = {}, {}
        for name, kind in self.kinds.items():
            value = raw[raw_input_name(name)]
            if kind == FeatureKind.NUMERIC:
                unscaled[name] = value
            elif kind == FeatureKind.DATETIME:
                present = tf.not_equal(value, datetimes.MISSING_SECONDS)
                for part, index in datetimes.part_indices(value, present).items():
                    out[datetimes.part_name(name, part)] = index
                elapsed = datetimes.elapsed_name(name)
                if elapsed in self.numeric:
                    seconds = tf.cast(value, tf.float32)
                    # Named so the TF.js quantizer leaves it alone (it cannot scale a NaN).
                    nan = tf.constant(np.nan, tf.float32, name=f"{RAW_CONSTANT_PREFIX}missing_seconds")
                    unscaled[elapsed] = tf.where(present, seconds, tf.fill(tf.shape(seconds), nan))
            else:
                present = tf.not_equal(value, "")
                # TF.js's table lookup returns a flat [n]; keep the input's [n, 1].
                index = tf.reshape(self.tables[name].lookup(value), tf.shape(value)) + 1
                missing = tf.fill(tf.shape(value), tf.constant(MISSING_INDEX, tf.int64))
                out[name] = tf.where(present, index, missing)
        # TFLite loses the rank through the table lookup and the select; without a static [batch, 1]
        # an embedding's Flatten read the embedding width as the batch size when the batch was 1.
        out = {name: tf.reshape(tensor, [-1, 1]) for name, tensor in out.items()}
        # Already [batch, 1] each: a reshape per feature would be an op per feature.
        z_scores = self._scale([unscaled[output] for output in self.numeric]) if unscaled else None
        return out, z_scores

    def _scale(self, columns: list[tf.Tensor]) -> tf.Tensor:
        """Every z-scored feature in one `[batch, n]` step (NaN marks a missing value), by the maps TF
        Transform applies: a handful of ops whatever the number of features, so a device model's size
        is its weights'."""
        maps = list(self.numeric.values())

        def row(field: str) -> tf.Tensor:
            return tf.constant(
                [[getattr(m, field) for m in maps]], tf.float32, name=f"{RAW_CONSTANT_PREFIX}{field}"
            )

        values = tf.concat(columns, axis=1) if len(columns) > 1 else columns[0]
        present = tf.logical_not(tf.math.is_nan(values))
        safe = tf.where(present, values, tf.zeros_like(values))
        scaled = (safe - row("center")) * row("scale") + row("offset")
        return tf.where(present, scaled, tf.zeros_like(values) + row("missing"))

    def z_scores_in(self, z_scores: tf.Tensor | None, order: list[str]) -> tf.Tensor | None:
        """The z-score matrix with its columns in `order` (the model's): one gather when the orders
        differ (a date-time's elapsed time comes last here, in its column's place in the model)."""
        if z_scores is None or order == list(self.numeric):
            return z_scores
        positions = [list(self.numeric).index(name) for name in order]
        return tf.gather(z_scores, positions, axis=1)


def _lookup_table(vocabulary: list[str], oov_buckets: int):
    """In-graph table: vocabulary entry -> 0..V-1, anything else -> an OOV bucket V..V+B-1.

    With one bucket a StaticHashTable with default V is used: it needs no hashing op, so it runs with
    TFLite's builtin ops. With more buckets, StaticVocabularyTable hashes exactly as TF Transform does.
    """
    keys = tf.constant(vocabulary or [""], tf.string)
    values = tf.range(len(vocabulary) or 1, dtype=tf.int64)
    initializer = tf.lookup.KeyValueTensorInitializer(keys, values)
    if oov_buckets == 1:
        return tf.lookup.StaticHashTable(initializer, default_value=len(vocabulary))
    return tf.lookup.StaticVocabularyTable(initializer, num_oov_buckets=oov_buckets)


def model_variables(saved_model) -> list[tf.Variable]:
    """The network's weights in a loaded SavedModel: what its raw-feature signature reads.

    The model is saved without Keras' layer traces, so the loaded object is no Keras model and has
    no `variables` of its own.
    """
    return list(saved_model.signatures[RAW_SIGNATURE].variables)


def class_names(spec: ProblemSpec, tft_output: tft.TFTransformOutput) -> list[str] | None:
    """The names of a classifier's outputs, in order, as the data writes them; None for regression.

    binary: [negative, positive] ("0", "1" for a 0/1 label); multiclass: the label vocabulary TF
    Transform learnt (class id = position); multilabel: the label columns.
    """
    if spec.task == TaskType.BINARY:
        return binary_class_names_in(tft_output.raw_metadata.schema, spec) or ["0", "1"]
    if spec.task == TaskType.MULTICLASS:
        vocabulary = tft_output.vocabulary_by_name(LABEL_CLASSES_VOCABULARY)
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in vocabulary]
    if spec.task == TaskType.MULTILABEL:
        return list(spec.label_columns)
    return None


def named_outputs(predictions: tf.Tensor, spec: ProblemSpec) -> dict[str, tf.Tensor]:
    """`predictions`, and for a multilabel task also one `[None, 1]` output named after each label."""
    outputs = {PREDICTIONS_KEY: predictions}
    if spec.task == TaskType.MULTILABEL:
        for index, label in enumerate(spec.label_columns):
            outputs[label] = predictions[:, index : index + 1]
    return outputs


def classify_outputs(predictions: tf.Tensor, spec: ProblemSpec, names: list[str]) -> dict[str, tf.Tensor]:
    """TF Serving's classify-style outputs: `scores` and `classes` [n, K], and `predicted_class` [n]
    (binary: the positive class when its probability is at least 0.5)."""
    scores = (
        tf.concat([1.0 - predictions, predictions], axis=1) if spec.task == TaskType.BINARY else predictions
    )
    table = tf.constant(names, tf.string)
    outputs = {SCORES_KEY: scores, CLASSES_KEY: tf.tile(table[None, :], [tf.shape(scores)[0], 1])}
    if spec.task != TaskType.MULTILABEL:
        outputs[PREDICTED_CLASS_KEY] = tf.gather(table, tf.argmax(scores, axis=1))
    return outputs


def save_with_signatures(
    model: keras.Model,
    spec: ProblemSpec,
    tft_output: tft.TFTransformOutput,
    export_dir: str,
    features: list[FeatureInput],
) -> None:
    """Saves `model` (built by `build_model` on `features`) with the tf.Example and raw-feature
    signatures."""
    model.tft_layer = tft_output.transform_features_layer()
    model.raw_transform = RawTransform(spec, tft_output)
    raw_spec = tft_output.raw_feature_spec()
    parse_spec = {name: raw_spec[name] for name in model.raw_transform.kinds}
    feature_names = model.raw_transform.output_names()
    names = class_names(spec, tft_output)

    # AutoGraph is off: these functions have no tensor-dependent Python control flow, and
    # converting Keras' call path costs many seconds at every export.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def serve_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, parse_spec)
        transformed = model.tft_layer(parsed)
        predictions = model({name: transformed[name] for name in feature_names})
        outputs = named_outputs(predictions, spec)
        if names is not None:
            outputs.update(classify_outputs(predictions, spec, names))
        return outputs

    numeric_order = [feature.name for feature in features if not feature.is_categorical]

    # The model's layers on the raw transform's z-score matrix as it is: no split into features and
    # concatenation back (128 tensors of a 64-column device model).
    @tf.function(autograph=False)
    def serve_raw(**raw: tf.Tensor) -> dict[str, tf.Tensor]:
        indices, z_scores = model.raw_transform.encode(raw)
        z_scores = model.raw_transform.z_scores_in(z_scores, numeric_order)
        return named_outputs(device_output(model, features, z_scores, indices), spec)

    label_spec = {name: raw_spec[name] for name in spec.label_columns}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")], autograph=False)
    def transformed_labels(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, {**parse_spec, **label_spec})
        transformed = model.tft_layer(parsed)
        return {name: transformed[name] for name in spec.label_columns}

    signatures = {
        SERVING_SIGNATURE: serve_examples.get_concrete_function(),
        RAW_SIGNATURE: serve_raw.get_concrete_function(**model.raw_transform.input_specs()),
        # TFMA calls a signature of this name when there is one, and reads the labels from it first: the
        # Evaluator then scores labels written as text ("yes"/"no") as the model was trained on them.
        TRANSFORMED_LABELS_SIGNATURE: transformed_labels.get_concrete_function(),
    }
    # Without the layers' traced call functions: everything that reads the model (TF Serving, TFMA,
    # the converters, the gate) calls its signatures, and re-tracing every layer through AutoGraph
    # for Keras' revival costs seconds at every export.
    model.save(export_dir, save_format="tf", signatures=signatures, save_traces=False)
    if names is not None:
        tf.io.gfile.makedirs(os.path.dirname(os.path.join(export_dir, CLASS_NAMES_FILE)))
        with tf.io.gfile.GFile(os.path.join(export_dir, CLASS_NAMES_FILE), "w") as handle:
            handle.write(json.dumps(names))
