"""ExampleGen's reading of the taxi CSV saved every way programs save tables: the same tf.Examples as the
plain file, so the same splits, model and metrics (the whole run: tests/e2e/test_pipeline_e2e.py).

Before this reader, TFX's own split the header on `,` and lines on `\\n`, kept a byte-order mark in the
first column's name, read no gzip and typed `NA` cells as text.
"""

from __future__ import annotations

import functools

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx_bsl.coders import csv_decoder

from components.checked_csv_example_gen.reader import BadCsvError, CsvToExamples, _ReadCsvRows, check_csv_file
from components.core import tables
from components.core.tables import DEFAULT_FORMAT, CsvFormat
from tests.helpers.data import SAVED_AS, save_as

ROWS = 400


def serialized(examples) -> list[bytes]:
    return sorted(example.SerializeToString(deterministic=True) for example in examples)


def examples_of(path: str, table_format: CsvFormat = DEFAULT_FORMAT) -> list[bytes]:
    """The file's tf.Examples from CsvToExamples' three steps, called as Beam calls them, sorted."""
    rows = list(_ReadCsvRows(table_format).process(path))
    header = tables.read_header(path, table_format.delimiter_of(path))
    inferrer = csv_decoder.ColumnTypeInferrer(header, skip_blank_lines=True)
    column_infos = inferrer.extract_output(
        functools.reduce(inferrer.add_input, rows, inferrer.create_accumulator())
    )
    to_example = csv_executor._ParsedCsvToTfExample()
    return serialized(example for row in rows for example in to_example.process(row, column_infos))


def examples_on_beam(folder, path: str) -> list[bytes]:
    """The file's tf.Examples from CsvToExamples run by Beam, as ExampleGen runs it."""
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | CsvToExamples([path], DEFAULT_FORMAT)
            | beam.io.WriteToTFRecord(
                str(folder / "examples"),
                coder=beam.coders.ProtoCoder(tf.train.Example),
                shard_name_template="",
            )
        )
    records = tf.data.TFRecordDataset([str(folder / "examples")]).as_numpy_iterator()
    return serialized(tf.train.Example.FromString(record) for record in records)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, taxi_rows):
    header, rows = taxi_rows
    folder = tmp_path_factory.mktemp("saved")
    files = {
        name: str(save_as(folder / f"{name}.csv", header, rows[:ROWS], how)) for name, how in SAVED_AS.items()
    }
    return folder, files, {name: examples_of(path) for name, path in files.items()}


def test_every_way_of_saving_gives_the_plain_files_examples(saved):
    _, _, examples = saved
    plain = examples["plain"]
    assert len(plain) == ROWS
    for name, found in examples.items():
        assert found == plain, f"{name}: {len(found)} examples, not the plain file's"


def test_beam_runs_the_same_reading(saved, tmp_path):
    _, files, examples = saved
    assert examples_on_beam(tmp_path, files["spreadsheet"]) == examples["plain"]


def kinds(records: list[bytes], column: str) -> set[str | None]:
    return {
        tf.train.Example.FromString(record).features.feature[column].WhichOneof("kind") for record in records
    }


def test_na_cells_are_missing_values_of_a_numeric_column(saved, taxi_rows):
    _, _, examples = saved
    header, rows = taxi_rows
    cells = [row["dropoff_latitude"] for row in rows[:ROWS]]
    assert "" in cells and any(cells), "real empty cells (written NA) among real values"
    assert kinds(examples["na-cells"], "dropoff_latitude") == {"float_list"}
    values = [
        tf.train.Example.FromString(r).features.feature["dropoff_latitude"].float_list.value
        for r in examples["na-cells"]
    ]
    assert sum(len(v) == 0 for v in values) == cells.count(""), "each NA cell is a missing value"


def test_without_missing_value_tokens_na_stays_text(saved, tmp_path):
    _, files, _ = saved
    assert kinds(examples_of(files["na-cells"], CsvFormat(missing_values=())), "dropoff_latitude") == {
        "bytes_list"
    }


@pytest.mark.parametrize("name", sorted(SAVED_AS))
def test_the_strict_check_reads_every_way_of_saving(saved, taxi_rows, name):
    _, files, _ = saved
    assert check_csv_file(files[name]) == (taxi_rows[0], ROWS)


def test_a_bad_row_in_a_semicolon_file_is_named_with_its_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("\ufefffare;company;tips\r\n1,5;a;0\r\n2,0;b\r\n".encode())
    with pytest.raises(
        BadCsvError, match="line 3: 2 fields where the header has 3.*a semicolon inside a value"
    ):
        check_csv_file(str(path))
