"""CSV files as people save them (`components.core.tables`): the strict check of a file's structure, and
its rows as tf.Examples on Beam, typed by TFX's own column type inference (tfx_bsl's ColumnTypeInferrer,
TFX's CSV-to-Example DoFn).

ExampleGen checks and reads a split with them; the drift check checks and reads a landed span with them,
so both see the same columns, types and missing values, and name a bad file the same way.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

import apache_beam as beam
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx_bsl.coders import csv_decoder

from components.core import tables
from components.core.tables import DEFAULT_FORMAT, CsvFormat


class BadCsvError(ValueError):
    """An input file that is not a well-formed CSV table; the message names the file and line."""


def check_csv_file(path: str, table_format: CsvFormat = DEFAULT_FORMAT) -> tuple[list[str], int]:
    """The header and number of data rows of `path`; raises BadCsvError naming the first structural
    problem."""
    line = 0
    try:
        delimiter = table_format.delimiter_of(path)
        with tables.open_text(path) as handle:
            reader = tables.reader(handle, delimiter)
            header = [name.strip() for name in next(reader, None) or []]
            if not any(header):
                raise BadCsvError(f"'{path}' is empty; a CSV needs a header row and data rows")
            rows = 0
            for row in reader:
                line = reader.line_num
                if not row:
                    continue  # a blank line, skipped as TFX's reader skips it
                if len(row) != len(header):
                    raise BadCsvError(
                        f"'{path}' line {line}: {len(row)} fields where the header has {len(header)}; "
                        f"fix or remove that row (a {tables.DELIMITER_NAMES[delimiter]} inside a value "
                        "needs quotes)"
                    )
                rows += 1
    except csv.Error as error:
        raise BadCsvError(
            f"'{path}' line {line + 1}: not valid CSV ({error}); check the quotes on that row"
        ) from None
    except (UnicodeDecodeError, tables.NotUtf8Error):
        raise BadCsvError(
            f"'{path}' line {_first_line_not_utf8(path)}: bytes that are not UTF-8 text; "
            "save the file as UTF-8"
        ) from None
    except tables.TableError as error:
        raise BadCsvError(str(error)) from None
    if rows == 0:
        raise BadCsvError(f"'{path}' has a header but no data rows; land a file with rows")
    return header, rows


def _first_line_not_utf8(path: str) -> int:
    with tables.open_bytes(path) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def csv_cells(path: str, table_format: CsvFormat) -> Iterator[list[bytes]]:
    """The data rows of one CSV file as cells (UTF-8 bytes, as tfx_bsl takes them), missing-value tokens
    as empty cells."""
    with tables.open_text(path) as handle:
        rows = tables.reader(handle, table_format.delimiter_of(path))
        next(rows, None)  # the header
        for row in rows:
            if row:  # blank lines are skipped, as TFX's reader skips them
                yield [cell.encode("utf-8") for cell in table_format.cells(row)]


class _ReadCsvRows(beam.DoFn):
    def __init__(self, table_format: CsvFormat):
        self._format = table_format

    def process(self, path: str) -> Iterable[list[bytes]]:
        yield from csv_cells(path, self._format)


class CsvToExamples(beam.PTransform):
    """The rows of `files` (one header for all) as tf.Examples; a column's type is INT, FLOAT or STRING
    over all its non-missing cells, as TFX's CsvExampleGen decides it."""

    def __init__(self, files: list[str], table_format: CsvFormat):
        super().__init__()
        self._files, self._format = files, table_format

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        first = self._files[0]
        header = tables.read_header(first, self._format.delimiter_of(first))
        rows = (
            pipeline
            | "CreateFilenames" >> beam.Create(self._files)
            | "ReadCsvRows" >> beam.ParDo(_ReadCsvRows(self._format))
        )
        column_infos = beam.pvalue.AsSingleton(
            rows
            | "InferColumnTypes"
            >> beam.CombineGlobally(csv_decoder.ColumnTypeInferrer(header, skip_blank_lines=True))
        )
        return rows | "ToTFExample" >> beam.ParDo(csv_executor._ParsedCsvToTfExample(), column_infos)


def examples_in_process(files: list[str], table_format: CsvFormat) -> list[bytes]:
    """The rows of `files` as serialized tf.Examples, typed as `CsvToExamples` types them (the same
    inferrer and DoFn, called here), without Beam: for a span small enough to hold in memory, where
    Beam's per-stage and per-element costs would be most of the work."""
    first = files[0]
    header = tables.read_header(first, table_format.delimiter_of(first))
    rows = [cells for path in files for cells in csv_cells(path, table_format)]
    inferrer = csv_decoder.ColumnTypeInferrer(header, skip_blank_lines=True)
    accumulator = inferrer.create_accumulator()
    for cells in rows:
        accumulator = inferrer.add_input(accumulator, cells)
    column_infos = inferrer.extract_output(accumulator)
    to_example = csv_executor._ParsedCsvToTfExample()
    return [
        example.SerializeToString(deterministic=True)
        for cells in rows
        for example in to_example.process(cells, column_infos)
    ]
