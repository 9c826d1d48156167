"""CheckedCsvExampleGen executor: reads every input file as strict CSV before TFX's CSV executor runs.

TFX's CSV reader fails deep inside a Beam job on a malformed row, a stray quote or bytes that are
not UTF-8 ("Invalid CSV line: [...]"), and turns a header-only file into zero examples that break
StatisticsGen later. This executor finds those problems first and names the file, the line and what
to do. It checks the file's structure only; the data's content is TFDV's job (StatisticsGen,
SchemaGen, ExampleValidator).
"""

from __future__ import annotations

import csv
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils


class BadCsvError(ValueError):
    """An input file that is not a well-formed CSV table; the message names the file and line."""


def check_csv_file(path: str) -> int:
    """The number of data rows in `path`; raises BadCsvError naming the first structural problem."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if not header or not any(name.strip() for name in header):
                raise BadCsvError(f"'{path}' is empty; a CSV needs a header row and data rows")
            rows = 0
            for row in reader:
                if not row:
                    continue  # a blank line, skipped as TFX's reader skips it
                if len(row) != len(header):
                    raise BadCsvError(
                        f"'{path}' line {reader.line_num}: {len(row)} fields where the header has "
                        f"{len(header)}; fix or remove that row (a comma inside a value needs quotes)"
                    )
                rows += 1
    except csv.Error as error:
        raise BadCsvError(
            f"'{path}' line {reader.line_num}: not valid CSV ({error}); check the quotes on that row"
        ) from None
    except UnicodeDecodeError:
        raise BadCsvError(
            f"'{path}' line {_first_line_not_utf8(path)}: bytes that are not UTF-8 text; "
            "save the file as UTF-8"
        ) from None
    if rows == 0:
        raise BadCsvError(f"'{path}' has a header but no data rows; land a file with rows")
    return rows


def _first_line_not_utf8(path: str) -> int:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def input_files(input_base: str, input_config: example_gen_pb2.Input) -> list[str]:
    """The files each input split's (span-resolved) pattern matches."""
    files = []
    for split in input_config.splits:
        matched = fileio.glob(os.path.join(input_base, split.pattern))
        files += sorted(path for path in matched if not fileio.isdir(path))
    return files


class Executor(csv_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        files = input_files(exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config)
        if not files:
            raise BadCsvError(
                f"no file under '{exec_properties[standard_component_specs.INPUT_BASE_KEY]}' matches "
                f"{[split.pattern for split in input_config.splits]}; land the data first"
            )
        rows = sum(check_csv_file(path) for path in files)
        logging.info("Checked %d CSV file(s): %d data rows", len(files), rows)
        super().Do(input_dict, output_dict, exec_properties)
