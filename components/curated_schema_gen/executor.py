"""CuratedSchemaGen executor: TFDV schema inference plus the spec's rules (see `curate_schema`)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import tensorflow as tf
import tensorflow_data_validation as tfdv
from absl import logging
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx import types
from tfx.components.schema_gen.executor import DEFAULT_FILE_NAME
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils

from components.core.artifacts import LEFT_OUT_TAG, problem_spec
from components.core.spec import FeatureKind, ProblemSpec, TaskType, positive_of
from components.scoring.parity import TRAIN_SPLIT, read_serialized, split_records

_NUMBER_TYPES = (schema_pb2.INT, schema_pb2.FLOAT)


class MissingColumnError(ValueError):
    """A column the spec names has no values at all in the training data."""


class ConstantLabelError(ValueError):
    """A label column holds one value in every training row: there is nothing to learn."""


class LabelValuesError(ValueError):
    """A text label whose values do not make the task's classes; the message names them and what to do."""


def _text_values(feature: statistics_pb2.FeatureNameStatistics) -> list[str]:
    return [bucket.value for bucket in feature.string_stats.top_values]


def check_text_label(feature: statistics_pb2.FeatureNameStatistics, column: str, spec: ProblemSpec) -> None:
    """A label written as text must make the task's classes: two values for binary (the positive one
    known), two yes/no-like values per multilabel column, two or more class names for multiclass."""
    values = _text_values(feature)
    shown = ", ".join(f"'{value}'" for value in values[:6]) + (
        ", ..." if feature.string_stats.unique > 6 else ""
    )
    if feature.string_stats.unique == 1:
        raise ConstantLabelError(
            f"label column '{column}' holds the single value {shown} in every training row; a "
            f"{spec.task.value} model needs labels that vary: check how the label is computed"
        )
    if spec.task == TaskType.MULTICLASS:
        return
    if feature.string_stats.unique != 2:
        raise LabelValuesError(
            f"label column '{column}' holds {feature.string_stats.unique} distinct values ({shown}); a "
            f"{spec.task.value} label needs two: check the column, or use task: multiclass"
        )
    if spec.task == TaskType.MULTILABEL:
        if positive_of(values, None) is None:
            raise LabelValuesError(
                f"label column '{column}' holds {shown}; a multilabel column says yes or no to its label: "
                "write it as 1/0, true/false or yes/no"
            )
        return
    if positive_of(values, spec.positive_class) is None:
        if spec.positive_class is not None:
            raise LabelValuesError(
                f"positive_class '{spec.positive_class}' is not a value of label column '{column}' "
                f"({shown}); name one of them"
            )
        raise LabelValuesError(
            f"label column '{column}' holds {shown}: name the positive one in the spec, e.g. "
            f"positive_class: {values[0]}"
        )


def check_classes_seen_in_training(column: str, counts: dict[str, Counter]) -> None:
    """A multiclass model knows the classes of its training split only: a class that appears in eval or
    test but never in train could never be predicted and has no class id. Raises LabelValuesError
    naming each such class, the split and its rows."""
    trained = set(counts.get(TRAIN_SPLIT, ()))
    unseen = [
        f"'{value}' ({rows} row{'s' if rows > 1 else ''} in {split})"
        for split, found in counts.items()
        if split != TRAIN_SPLIT
        for value, rows in sorted(found.items())
        if value not in trained
    ]
    if unseen:
        raise LabelValuesError(
            f"label column '{column}': class {', '.join(unseen)} never appears in the train split, so the "
            "model could not learn it; remove those rows or merge the class into another, or add "
            "training rows of it"
        )


def label_counts(examples: list[types.Artifact], column: str) -> dict[str, Counter]:
    """Per split, how many rows hold each value of a label column (as text)."""
    counts: dict[str, Counter] = {}
    for split in artifact_utils.decode_split_names(examples[0].split_names):
        found: Counter = Counter()
        for record in read_serialized(split_records(examples, split)):
            feature = tf.train.Example.FromString(record).features.feature.get(column)
            if feature is None:
                continue
            kind = feature.WhichOneof("kind")
            values = getattr(feature, kind).value if kind else []
            found.update(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)
        counts[split] = found
    return counts


def check_labels_vary(stats: statistics_pb2.DatasetFeatureStatisticsList, spec: ProblemSpec) -> None:
    """Raises ConstantLabelError when a label column's training values are all the same, and
    LabelValuesError when a text label's values do not make the task's classes."""
    by_name = {feature.path.step[0]: feature for feature in stats.datasets[0].features if feature.path.step}
    for column in spec.label_columns:
        feature = by_name.get(column)
        if feature is not None and feature.HasField("string_stats"):
            check_text_label(feature, column, spec)
            continue
        if feature is None or not feature.HasField("num_stats"):
            continue  # a missing label is reported by curate_schema / ExampleValidator
        if feature.num_stats.min == feature.num_stats.max:
            raise ConstantLabelError(
                f"label column '{column}' holds the single value {feature.num_stats.min:g} in every "
                f"training row; a {spec.task.value} model needs labels that vary: check how the "
                "label is computed"
            )
        low, high = feature.num_stats.min, feature.num_stats.max
        if spec.task == TaskType.BINARY and spec.positive_class is None and (low, high) != (0, 1):
            raise LabelValuesError(
                f"label column '{column}' holds numbers from {low:g} to {high:g}, not 0/1: name the "
                f"positive one in the spec, e.g. positive_class: {high:g}"
            )


def binary_number_domain(column: str, counts: dict[str, Counter], positive_class: str) -> tuple[int, int]:
    """The two values of a binary label written as numbers other than 0/1 (e.g. 2/4), across every split;
    LabelValuesError unless there are two and `positive_class` is one of them."""
    values = sorted({value for found in counts.values() for value in found}, key=float)
    shown = ", ".join(values[:6]) + (", ..." if len(values) > 6 else "")
    if len(values) != 2:
        raise LabelValuesError(
            f"label column '{column}' holds {len(values)} distinct values ({shown}); a binary label needs "
            "two: check the column, or use task: multiclass"
        )
    if positive_class.strip() not in values:
        raise LabelValuesError(
            f"positive_class '{positive_class}' is not a value of label column '{column}' ({shown}); "
            "name one of them"
        )
    return int(float(values[0])), int(float(values[1]))


IDENTIFIER_MIN_ROWS = 20  # fewer non-missing values than this prove nothing about uniqueness
IDENTIFIER_TEXT_SHARE = 0.95  # distinct share of a text column that makes it an identifier
IDENTIFIER_SAMPLE_ROWS = 20_000  # training rows read to count distinct values


def identifier_columns(
    schema: schema_pb2.Schema, spec: ProblemSpec, examples: Iterable[tf.train.Example]
) -> dict[str, str]:
    """The columns that name rows rather than describe them, each with the reason; only among the
    features the spec lets Blueprint choose (`features` omitted): naming a column in `features` keeps it.

    Text: at least IDENTIFIER_TEXT_SHARE of its values distinct (a name, an order number, a UUID).
    Integer: every value distinct and the values packed like row numbers (their range at most twice their
    count), so counts, timestamps or amounts that happen to be unique stay features.
    """
    if spec.features is not None:
        return {}
    types_of = {feature.name: feature.type for feature in schema.feature}
    candidates = {
        name
        for name, kind in spec.feature_columns(list(types_of)).items()
        if types_of[name] in (schema_pb2.BYTES, schema_pb2.INT) and kind != FeatureKind.DATETIME
    }
    values: dict[str, list] = {name: [] for name in candidates}
    for example in examples:
        for name in candidates:
            feature = example.features.feature.get(name)
            cells = feature and (feature.bytes_list.value or feature.int64_list.value)
            if cells:
                values[name].append(cells[0])
    found = {}
    for name in sorted(candidates):
        seen = values[name]
        if len(seen) < IDENTIFIER_MIN_ROWS:
            continue
        share = len(set(seen)) / len(seen)
        if types_of[name] == schema_pb2.BYTES and share >= IDENTIFIER_TEXT_SHARE:
            found[name] = (
                f"{share:.0%} of its {len(seen)} sampled training values are distinct: it names rows "
                "rather than describing them"
            )
        elif types_of[name] == schema_pb2.INT and share == 1.0 and max(seen) - min(seen) < 2 * len(seen):
            found[name] = (
                f"its {len(seen)} sampled training values are distinct integers packed like row numbers "
                f"({min(seen)}..{max(seen)})"
            )
    return {name: f"{reason}; name it in 'features' to use it anyway" for name, reason in found.items()}


def empty_columns(stats: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, str]:
    """The columns with no value in any row of `stats` (the train split's), each with the reason: a CSV
    column left blank, or `NA` in every row. TF Transform's mean of no values is NaN, and NaN z-scores
    would poison training, so such a column cannot be a feature."""
    dataset = stats.datasets[0]
    found = {}
    for feature in dataset.features:
        kind = feature.WhichOneof("stats")
        if feature.path.step and kind and getattr(feature, kind).common_stats.num_non_missing == 0:
            found[feature.path.step[0]] = (
                f"it has no value in any of the {dataset.num_examples} training rows; fill it in to use it"
            )
    return found


def curate_schema(
    schema: schema_pb2.Schema,
    spec: ProblemSpec,
    identifiers: dict[str, str] | None = None,
    label_domain: tuple[int, int] | None = None,
    empty: dict[str, str] | None = None,
) -> schema_pb2.Schema:
    """Returns a copy of an inferred schema with the spec's rules applied. `identifiers` and, when the spec
    leaves the features to Blueprint, `empty` columns (`empty_columns`; each column -> reason) are left out
    of the features, deprecated and annotated with the reason. A column the spec needs that is missing
    from the schema or empty raises MissingColumnError."""
    curated = schema_pb2.Schema()
    curated.CopyFrom(schema)
    by_name = {feature.name: feature for feature in curated.feature}
    empty = empty or {}
    chosen = spec.feature_columns(list(by_name))
    left_out = dict(identifiers or {})
    if spec.features is None:
        left_out.update({name: reason for name, reason in empty.items() if name in chosen})
    used = {name: kind for name, kind in chosen.items() if name not in left_out}
    for name, reason in left_out.items():
        logging.warning("Column '%s' is not used as a feature: %s", name, reason)
        by_name[name].annotation.tag.append(LEFT_OUT_TAG)
        by_name[name].annotation.comment.append(reason)
    for column in [*spec.label_columns, *used]:
        if column not in by_name or column in empty:
            raise MissingColumnError(
                f"column '{column}' has no values in the training data; fill it or drop it from "
                "the spec's features"
            )
    for column in spec.label_columns:
        _curate_label(by_name[column], spec.task, label_domain)
    for name, kind in used.items():
        _curate_feature(by_name[name], kind)
    for name, feature in by_name.items():
        if name not in used and name not in spec.label_columns:
            feature.lifecycle_stage = schema_pb2.DEPRECATED
    referenced = {f.domain for f in curated.feature if f.WhichOneof("domain_info") == "domain"}
    kept = [d for d in curated.string_domain if d.name in referenced]
    del curated.string_domain[:]
    curated.string_domain.extend(kept)
    return curated


def _curate_label(feature: schema_pb2.Feature, task: TaskType, domain: tuple[int, int] | None = None) -> None:
    """`domain`: a binary label's two numbers when they are not 0/1 (binary_number_domain)."""
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    feature.ClearField("value_count")
    feature.shape.Clear()
    feature.shape.dim.add().size = 1
    if task != TaskType.REGRESSION and feature.type == schema_pb2.BYTES:
        # Text values, checked against the statistics. Their string domain (if TFDV inferred one)
        # stays: a value that training never saw is named by ExampleValidator in the eval or test split.
        return
    if task in (TaskType.BINARY, TaskType.MULTILABEL):
        feature.type = schema_pb2.INT
        feature.ClearField("domain_info")
        feature.int_domain.min, feature.int_domain.max = domain or (0, 1)
    elif task == TaskType.MULTICLASS:
        feature.type = schema_pb2.INT  # any integers: the label vocabulary gives them class ids
        feature.ClearField("domain_info")
    else:
        if feature.type not in _NUMBER_TYPES:
            feature.type = schema_pb2.FLOAT
        _refuse_nan_and_inf(feature)


def _curate_feature(feature: schema_pb2.Feature, kind: FeatureKind) -> None:
    if kind == FeatureKind.NUMERIC and feature.type not in _NUMBER_TYPES:
        feature.type = schema_pb2.FLOAT
    feature.ClearField("domain_info")
    feature.ClearField("presence")
    feature.presence.min_count = 1
    feature.ClearField("shape")
    feature.ClearField("value_count")
    feature.value_count.max = 1  # an empty CSV cell is an example with no value: allowed
    if kind == FeatureKind.NUMERIC:
        _refuse_nan_and_inf(feature)


def _refuse_nan_and_inf(feature: schema_pb2.Feature) -> None:
    """NaN or infinity would poison the mean and the z-score; a missing value is an empty cell."""
    if feature.type == schema_pb2.FLOAT:
        feature.float_domain.disallow_nan = True
        feature.float_domain.disallow_inf = True


def _is_number(schema: schema_pb2.Schema, column: str) -> bool:
    return any(f.name == column and f.type in _NUMBER_TYPES for f in schema.feature)


def _training_examples(input_dict: dict[str, list[types.Artifact]]) -> Iterator[tf.train.Example]:
    """Up to IDENTIFIER_SAMPLE_ROWS examples of the train split (none without an examples input)."""
    examples = input_dict.get(standard_component_specs.EXAMPLES_KEY) or []
    if not examples:
        return iter(())
    records = read_serialized(split_records(examples, TRAIN_SPLIT), IDENTIFIER_SAMPLE_ROWS)
    return (tf.train.Example.FromString(record) for record in records)


class Executor(base_executor.BaseExecutor):
    """Infers the schema from the non-excluded splits, curates it, writes `schema.pbtxt`."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        spec = problem_spec(exec_properties)
        exclude = json.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY) or "[]")
        stats_artifact = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.STATISTICS_KEY]
        )
        schema = None
        empty: dict[str, str] = {}
        for split in artifact_utils.decode_split_names(stats_artifact.split_names):
            if split in exclude:
                continue
            stats = stats_artifact_utils.load_statistics(stats_artifact, split).proto()
            check_labels_vary(stats, spec)
            if split == TRAIN_SPLIT:
                empty = empty_columns(stats)
            schema = (
                tfdv.infer_schema(stats, infer_feature_shape=True)
                if schema is None
                else tfdv.update_schema(schema, stats, infer_feature_shape=True)
            )
        if schema is None:
            raise ValueError(f"no statistics split left after excluding {exclude}")
        examples = input_dict.get(standard_component_specs.EXAMPLES_KEY) or []
        column = spec.label_columns[0]
        label_domain = None
        if spec.task == TaskType.MULTICLASS and examples:
            check_classes_seen_in_training(column, label_counts(examples, column))
        if (
            spec.task == TaskType.BINARY
            and spec.positive_class is not None
            and examples
            and _is_number(schema, column)
        ):
            label_domain = binary_number_domain(column, label_counts(examples, column), spec.positive_class)
        identifiers = identifier_columns(schema, spec, _training_examples(input_dict))
        curated = curate_schema(schema, spec, identifiers, label_domain, empty)
        output_uri = os.path.join(
            artifact_utils.get_single_uri(output_dict[standard_component_specs.SCHEMA_KEY]),
            DEFAULT_FILE_NAME,
        )
        io_utils.write_pbtxt_file(output_uri, curated)
        logging.info("Curated schema written to %s", output_uri)
