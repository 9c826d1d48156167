"""The Transform step, generated from the problem spec (`preprocessing_fn`, called by TFX Transform).

Numeric features: a missing value becomes the training mean (or median), then the value is scaled to
mean 0 / standard deviation 1 (the model clips it, see `components/modules/model_builder.py`).
Categorical features go through a vocabulary learnt on the training split with an explicit missing
category and OOV buckets:

    index 0           the value is missing
    index 1 .. V      the V vocabulary entries, most frequent first
    index V+1 .. V+B  B out-of-vocabulary buckets (values never seen in training)

A date-time feature becomes three categories: its hour, weekday and month (`datetime_parts`).

Every transformed feature is a `[batch, 1]` tensor. Labels become what their task needs (`prepare_label`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components.core.artifacts import PROBLEM_SPEC_KEY
from components.core.spec import POSITIVE_WORDS, FeatureKind, PreprocessingSpec, ProblemSpec, TaskType
from components.modules import datetimes

MISSING_INDEX = 0
MISSING_TOKEN = "__blueprint_missing__"


def vocabulary_name(feature: str) -> str:
    """The file name TFT gives a feature's vocabulary (read back with `vocabulary_by_name`)."""
    return f"{feature}_vocabulary"


LABEL_CLASSES_VOCABULARY = "label_classes"


def resolve_kind(kind: FeatureKind, dtype: tf.DType) -> FeatureKind:
    """A feature's kind: as the spec says, or inferred from its schema type (text -> categorical)."""
    if kind != FeatureKind.AUTO:
        return kind
    return FeatureKind.CATEGORICAL if dtype == tf.string else FeatureKind.NUMERIC


def categorical_bucket_count(vocabulary_size: int, oov_buckets: int) -> int:
    """How many indices a categorical feature uses: missing + vocabulary + OOV buckets."""
    return 1 + vocabulary_size + oov_buckets


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, tf.Tensor]:
    spec = ProblemSpec.from_config(custom_config[PROBLEM_SPEC_KEY])
    outputs: dict[str, tf.Tensor] = {}
    numeric: dict[str, tf.Tensor | tf.SparseTensor] = {}
    elapsed: dict[str, tf.Tensor] = {}
    for name, kind in spec.feature_columns(list(inputs)).items():
        column = inputs[name]
        kind = resolve_kind(kind, column.dtype)
        if kind == FeatureKind.NUMERIC:
            numeric[name] = column
        elif kind == FeatureKind.DATETIME:
            parts, seconds = datetime_parts_and_seconds(column, name)
            outputs.update(parts)
            if spec.preprocessing.datetime_elapsed:
                elapsed[datetimes.elapsed_name(name)] = seconds
        else:
            outputs[name] = index_categorical(column, name, spec.preprocessing)
    if numeric or elapsed:
        names, matrix = numeric_matrix(numeric, elapsed)
        outputs.update(scale_numeric(names, matrix, spec.preprocessing))
    for label in spec.label_columns:
        outputs[label] = prepare_label(inputs[label], spec.task, spec.positive_class)
    return outputs


def _values_and_presence(column: tf.Tensor | tf.SparseTensor, default: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """A `[batch]` tensor with `default` where the value is missing, and a `[batch]` presence mask."""
    if isinstance(column, tf.SparseTensor):
        single = tf.SparseTensor(column.indices, column.values, [column.dense_shape[0], 1])
        values = tf.sparse.to_dense(single, default_value=default)
        present = tf.sparse.to_dense(
            tf.SparseTensor(column.indices, tf.ones_like(column.values, tf.bool), single.dense_shape),
            default_value=False,
        )
        return tf.reshape(values, [-1]), tf.reshape(present, [-1])
    values = tf.reshape(column, [-1])
    return values, tf.ones_like(values, tf.bool)


def _present_values(column: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    return column.values if isinstance(column, tf.SparseTensor) else tf.reshape(column, [-1])


def numeric_matrix(
    columns: dict[str, tf.Tensor | tf.SparseTensor], derived: dict[str, tf.Tensor]
) -> tuple[list[str], tf.Tensor]:
    """Numeric columns and `[batch]` float32 derived values (NaN where missing) as one `[batch, n]`
    float32 tensor with NaN where a value is missing, and its columns' names in order.

    The sparse columns (one value or none per row) of each type are concatenated as one sparse tensor
    and made dense once: TF Transform traces the preprocessing five times, and the ops of each column in
    each trace were most of a 64-column table's Transform."""
    sparse = {name: c for name, c in columns.items() if isinstance(c, tf.SparseTensor)}
    names, blocks = [], []
    if sparse:
        width_one = tf.stack([next(iter(sparse.values())).dense_shape[0], 1])
        for dtype in sorted({c.dtype for c in sparse.values()}, key=lambda d: d.name):
            group = {name: c for name, c in sparse.items() if c.dtype == dtype}
            merged = tf.sparse.concat(
                1, [tf.SparseTensor(c.indices, c.values, width_one) for c in group.values()]
            )
            as_float = tf.SparseTensor(merged.indices, tf.cast(merged.values, tf.float32), merged.dense_shape)
            blocks.append(tf.sparse.to_dense(as_float, default_value=float("nan")))
            names += group
    dense = {name: c for name, c in columns.items() if name not in sparse}
    blocks += [tf.reshape(tf.cast(c, tf.float32), [-1, 1]) for c in [*dense.values(), *derived.values()]]
    matrix = tf.concat(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    return [*names, *dense, *derived], matrix


def scale_numeric(names: list[str], matrix: tf.Tensor, options: PreprocessingSpec) -> dict[str, tf.Tensor]:
    """Every numeric feature at once: the `[batch, n]` float32 `matrix` (`numeric_matrix`, NaN where
    missing) is analyzed by one mean and one variance analyzer (and one quantile analyzer for a median
    fill), imputed and z-scored in one step, and split into each feature's `[batch, 1]` z-scores.
    Per-feature analyzers cost a Beam stage each: a 64-column table took almost three times as long to
    transform as the 14-column taxi table with four times its rows. TF Transform's analyzers skip NaN, so
    a missing value does not count towards the statistics."""
    present = tf.logical_not(tf.math.is_nan(matrix))
    # The analyzers sum in float64: Beam may split the sums into other bundles from run to run, and
    # float32 sums of values like longitudes (-87.6 +- 0.05) then differ in their last bits, which
    # training amplifies. Rounded back to float32 they are the same, so the same data gives the
    # same transform and, seeded, the same model. The graph computes in float32 (TFLite builtins).
    wide = tf.cast(matrix, tf.float64)
    mean = tf.cast(tft.mean(wide, reduce_instance_dims=False), tf.float32)
    std = tf.cast(tf.sqrt(tft.var(wide, reduce_instance_dims=False)), tf.float32)
    if options.numeric_missing == "median":
        medians = tft.quantiles(matrix, num_buckets=2, epsilon=0.001, reduce_instance_dims=False)
        fill = tf.reshape(medians, [len(names)])
    else:
        fill = mean
    filled = tf.where(present, matrix, fill)
    scaled = tf.math.divide_no_nan(filled - mean, std)
    return dict(zip(names, tf.split(scaled, len(names), axis=1), strict=True))


def as_text(values: tf.Tensor) -> tf.Tensor:
    """Numbers as category names: integers as written ("7"); floats as `%g` writes them ("8" for 8.0,
    "1.5"), so a Parquet file's float column of area codes reads as the codes."""
    if values.dtype == tf.string:
        return values
    return tf.strings.as_string(values, shortest=values.dtype.is_floating)


def _as_text(column: tf.Tensor | tf.SparseTensor) -> tf.Tensor | tf.SparseTensor:
    if isinstance(column, tf.SparseTensor):
        return tf.SparseTensor(column.indices, as_text(column.values), column.dense_shape)
    return as_text(column)


def index_categorical(
    column: tf.Tensor | tf.SparseTensor, name: str, options: PreprocessingSpec
) -> tf.Tensor:
    """Vocabulary index with 0 for a missing value (see the module docstring for the layout)."""
    text = _as_text(column)
    vocabulary = tft.vocabulary(
        _present_values(text),
        top_k=options.vocabulary.top_k,
        frequency_threshold=options.vocabulary.min_frequency
        if options.vocabulary.min_frequency > 1
        else None,
        vocab_filename=vocabulary_name(name),
    )
    values, present = _values_and_presence(text, MISSING_TOKEN)
    index = tft.apply_vocabulary(values, vocabulary, num_oov_buckets=options.vocabulary.oov_buckets)
    return tf.reshape(tf.where(present, index + 1, MISSING_INDEX), [-1, 1])


def datetime_parts_and_seconds(
    column: tf.Tensor | tf.SparseTensor, name: str
) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """A date-time column (ISO-8601 text or Unix seconds) as its hour, weekday and month categories
    (`components/modules/datetimes.py`), and its `[batch]` float32 seconds, NaN where missing (what
    `datetime_elapsed` z-scores with the numeric features); text that is not a date-time is missing."""
    values, present = _values_and_presence(column, tf.zeros([], column.dtype))
    if column.dtype == tf.string:
        seconds, valid = datetimes.seconds_from_text(values)
        present = tf.logical_and(present, valid)
    else:
        seconds = tf.cast(tf.math.floor(tf.cast(values, tf.float64)), tf.int64)
    parts = {
        datetimes.part_name(name, part): tf.reshape(index, [-1, 1])
        for part, index in datetimes.part_indices(seconds, present).items()
    }
    # float32 seconds, as the raw signature casts its int32 input: the same rounding on both paths.
    wide = tf.cast(seconds, tf.float32)
    return parts, tf.where(present, wide, tf.fill(tf.shape(wide), tf.constant(float("nan"))))


def prepare_label(
    column: tf.Tensor | tf.SparseTensor, task: TaskType, positive_class: str | None = None
) -> tf.Tensor:
    """What the model learns: float32 for regression; int64 class ids otherwise.

    - binary, multilabel column: 1 for the positive value, 0 otherwise; a binary label of two numbers
      other than 0/1 (2/4) is 1 where it equals `positive_class`. Text is folded (case, spaces):
      the positive value is `positive_class` (binary), else the one of yes/true/1/y/t; CuratedSchemaGen
      has checked that a text column holds two values and that the positive one is known.
    - multiclass: the index of the value (text or integer) in the label vocabulary TF Transform learns
      on the training split, most frequent class first; the vocabulary is the model's class list.
      CuratedSchemaGen has checked that eval and test hold no class the training split lacks.
    """
    values, _ = _values_and_presence(column, tf.zeros([], column.dtype))
    if task == TaskType.REGRESSION:
        return tf.reshape(tf.cast(values, tf.float32), [-1, 1])
    if task == TaskType.MULTICLASS:
        index = tft.compute_and_apply_vocabulary(
            _as_text(values), vocab_filename=LABEL_CLASSES_VOCABULARY, default_value=-1
        )
        return tf.reshape(index, [-1, 1])
    if task == TaskType.BINARY and column.dtype != tf.string and positive_class is not None:
        return tf.reshape(tf.cast(tf.equal(as_text(values), positive_class.strip()), tf.int64), [-1, 1])
    if column.dtype == tf.string:
        folded = tf.strings.lower(tf.strings.strip(values))
        chosen = positive_class if task == TaskType.BINARY else None
        positives = [chosen.strip().lower()] if chosen is not None else list(POSITIVE_WORDS)
        is_positive = tf.reduce_any(tf.equal(folded[:, None], tf.constant(positives)[None, :]), axis=1)
        return tf.reshape(tf.cast(is_positive, tf.int64), [-1, 1])
    return tf.reshape(tf.cast(values, tf.int64), [-1, 1])
