"""page.json, what the TF.js page shows beside the model, from real taxi trips: the features in the spec's
order, select lists of their vocabularies, typical values, real test rows and the words for the answer.
The page itself is checked in Chromium on pushed models (tests/e2e: test_deployment, test_class_names)."""

from __future__ import annotations

import collections
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from components.core.spec import TaskType
from components.model_exporter.page import (
    class_labels,
    example_rows,
    feature_entries,
    label_cells,
    listed,
    typical_value,
)
from components.modules.datetimes import MISSING_SECONDS, iso_text

SPEC_ORDER = ["fare", "trip_start_hour", "company", "trip_start_timestamp"]
# The raw signature lists its inputs alphabetically, whatever the spec's order.
INPUT_DTYPES = {
    "company": tf.string,
    "fare": tf.float32,
    "trip_start_hour": tf.string,
    "trip_start_timestamp": tf.int32,
}


class Vocabularies:
    """TF Transform's vocabularies of the trips (most frequent first), as `TFTransformOutput` serves them."""

    def __init__(self, rows: list[dict[str, str]]):
        self.files = {
            f"{name}_vocabulary": [
                value.encode()
                for value, _ in collections.Counter(r[name] for r in rows if r[name]).most_common()
            ]
            for name in ("company", "trip_start_hour")
        }

    def vocabulary_by_name(self, name: str) -> list[bytes]:
        if name not in self.files:
            raise ValueError(f"Could not read vocabulary: {name}, does not exist")
        return self.files[name]


@pytest.fixture(scope="module")
def trips(taxi_rows) -> list[dict[str, str]]:
    return taxi_rows[1][:3000]


def raw_inputs(rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """The rows as the raw signature takes them: NaN, "" and MISSING_SECONDS for an empty cell."""
    return {
        "company": np.array([r["company"] for r in rows], dtype=object).reshape(-1, 1),
        "fare": np.array([float(r["fare"]) if r["fare"] else math.nan for r in rows], np.float32).reshape(
            -1, 1
        ),
        "trip_start_hour": np.array([r["trip_start_hour"] for r in rows], dtype=object).reshape(-1, 1),
        "trip_start_timestamp": np.array(
            [int(r["trip_start_timestamp"]) if r["trip_start_timestamp"] else MISSING_SECONDS for r in rows],
            np.int32,
        ).reshape(-1, 1),
    }


def test_features_come_in_the_specs_order_with_vocabularies_and_training_medians(trips):
    columns = {name: name for name in INPUT_DTYPES}
    entries = feature_entries(columns, SPEC_ORDER, INPUT_DTYPES, raw_inputs(trips), Vocabularies(trips))
    assert [e["column"] for e in entries] == SPEC_ORDER
    by_name = {e["column"]: e for e in entries}
    assert [by_name[n]["kind"] for n in SPEC_ORDER] == ["numeric", "categorical", "categorical", "datetime"]
    hours = by_name["trip_start_hour"]
    assert hours["vocabulary"] == [str(h) for h in range(24)]  # codes in numeric order, not by frequency
    busiest = collections.Counter(r["trip_start_hour"] for r in trips).most_common(1)[0][0]
    assert hours["typical"] == busiest
    companies = collections.Counter(r["company"] for r in trips if r["company"]).most_common()
    assert by_name["company"]["vocabulary"] == [name for name, _ in companies]  # names: most frequent first
    assert by_name["company"]["typical"] == "Taxi Affiliation Services"
    fares = [float(r["fare"]) for r in trips if r["fare"]]
    assert by_name["fare"]["typical"] == pytest.approx(float(np.median(np.float32(fares))), rel=1e-3)
    seconds = [int(r["trip_start_timestamp"]) for r in trips]
    assert by_name["trip_start_timestamp"]["typical"] == iso_text(int(np.median(seconds)))
    assert by_name["trip_start_timestamp"]["typical"].startswith(("2013", "2014", "2015", "2016"))
    json.dumps(entries, allow_nan=False)  # what the page parses: no NaN


def test_an_input_the_spec_does_not_name_comes_last_and_a_resource_is_no_feature(trips):
    dtypes = {**INPUT_DTYPES, "a_handle": tf.resource, "tips": tf.float32}
    inputs = {**raw_inputs(trips), "tips": raw_inputs(trips)["fare"]}
    entries = feature_entries({n: n for n in dtypes}, SPEC_ORDER, dtypes, inputs, Vocabularies(trips))
    assert [e["column"] for e in entries] == [*SPEC_ORDER, "tips"]


def test_typical_values_skip_missing_cells():
    fares = np.array([[np.nan], [4.25], [np.nan], [12.5], [7.0]], np.float32)
    assert typical_value("numeric", fares) == 7.0
    assert typical_value("numeric", np.full((3, 1), np.nan, np.float32)) is None
    stamps = np.array([[MISSING_SECONDS], [1400269500], [1400273100]], np.int32)
    assert typical_value("datetime", stamps) == "2014-05-16T20:15:00"


def test_test_rows_are_written_as_the_form_writes_them(trips):
    rows = trips[:5]
    inputs = raw_inputs(rows)
    columns = {name: name for name in INPUT_DTYPES}
    entries = feature_entries(columns, SPEC_ORDER, INPUT_DTYPES, raw_inputs(trips), Vocabularies(trips))
    actual = {"big_tipper": [r["big_tipper"] for r in rows]}
    written = example_rows(entries, inputs, actual)
    assert len(written) == 5
    for row, trip in zip(written, rows, strict=True):
        assert row["actual"] == {"big_tipper": trip["big_tipper"]}
        assert row["values"]["company"] == trip["company"]  # "" when the trip names none
        assert row["values"]["trip_start_hour"] == trip["trip_start_hour"]
        assert row["values"]["fare"] == float(trip["fare"])  # 12.45, not float32's 12.4499998
        assert row["values"]["trip_start_timestamp"] == iso_text(int(trip["trip_start_timestamp"]))
    gaps = {**inputs, "fare": np.full((5, 1), np.nan, np.float32)}
    gaps["trip_start_timestamp"] = np.full((5, 1), MISSING_SECONDS, np.int32)
    empty = example_rows(entries, gaps, actual)[0]["values"]
    assert empty["fare"] is None and empty["trip_start_timestamp"] == ""
    json.dumps(written, allow_nan=False)


def test_label_cells_read_dense_and_sparse_labels_as_class_names_write_them():
    assert label_cells(tf.constant([[0], [1], [1]], tf.int64), 3) == ["0", "1", "1"]
    assert label_cells(tf.constant([[b"Cash"], [b"Credit Card"]]), 2) == ["Cash", "Credit Card"]
    fares = tf.SparseTensor([[0, 0], [2, 0]], tf.constant([12.5, 8.0], tf.float32), [3, 1])
    assert label_cells(fares, 3) == ["12.5", "", "8"]


@pytest.mark.parametrize(
    ("task", "names", "words"),
    [
        (TaskType.BINARY, ["0", "1"], ["no", "yes"]),
        (TaskType.BINARY, ["N", "Y"], ["no", "yes"]),
        (TaskType.BINARY, ["benign", "malignant"], ["benign", "malignant"]),
        (TaskType.MULTICLASS, ["Cash", "Credit Card", "No Charge"], ["Cash", "Credit Card", "No Charge"]),
        (TaskType.REGRESSION, None, None),
    ],
)
def test_the_answer_says_yes_or_no_only_for_a_yes_no_label(task, names, words):
    assert class_labels(task, names) == words


def test_listed_sorts_number_codes_only():
    assert listed(["8", "32", "-1", "6"]) == ["-1", "6", "8", "32"]
    assert listed(["Cash", "Credit Card", "7"]) == ["Cash", "Credit Card", "7"]
