"""CheckedCsvExampleGen executor: checks every input file as strict CSV, then reads it into tf.Examples.

TFX's CSV reader splits the header line on `,` itself, keeps a byte-order mark in the first name, splits
lines on `\\n` only, reads no gzip and takes `NA` for text: a table saved by a spreadsheet or by R fails
deep inside a Beam job, or trains on something else. This executor reads each file through
`components.core.tables` (Python's csv module: `,` `;` tab or `|`, LF / CRLF / CR, quoted names, gzip,
missing-value tokens) and hands the cells to TFX's own type inference and tf.Example encoding (tfx_bsl's
ColumnTypeInferrer, TFX's CSV-to-Example DoFn), so the examples are typed exactly as TFX types them.

Before the Beam job it checks each file's structure and names the file, the line and what to do: a row
with the wrong number of cells, a stray quote, bytes that are not UTF-8, a header-only file. The data's
content is TFDV's job (StatisticsGen, SchemaGen, ExampleValidator).
"""

from __future__ import annotations

import json
import os
from typing import Any

import apache_beam as beam
from absl import logging
from google.protobuf import json_format, struct_pb2
from tfx import types
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.checked_csv_example_gen.reader import BadCsvError, CsvToExamples, check_csv_file
from components.core.tables import CsvFormat


def csv_format_of(exec_properties: dict[str, Any]) -> CsvFormat:
    """The CsvFormat the component packed into its `custom_config` (defaults when there is none)."""
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}", config)
    if not config.HasField("custom_config"):
        return CsvFormat()
    values = struct_pb2.Struct()
    config.custom_config.Unpack(values)
    return CsvFormat.from_config(json_format.MessageToDict(values))


def input_files(input_base: str, input_config: example_gen_pb2.Input) -> list[str]:
    """The files each input split's (span-resolved) pattern matches."""
    files = []
    for split in input_config.splits:
        matched = fileio.glob(os.path.join(input_base, split.pattern))
        files += sorted(path for path in matched if not fileio.isdir(path))
    return files


class _CsvToExample(beam.PTransform):
    """TFX's ExampleGen interface (exec properties and one split's pattern) to CsvToExamples."""

    def __init__(self, exec_properties: dict[str, Any], split_pattern: str):
        super().__init__()
        self._pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
        self._format = csv_format_of(exec_properties)

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        files = sorted(path for path in fileio.glob(self._pattern) if not fileio.isdir(path))
        if not files:
            raise BadCsvError(f"no file matches '{self._pattern}'; land the data first")
        return pipeline | CsvToExamples(files, self._format)


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToExample

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
        table_format = csv_format_of(exec_properties)
        checked = {path: check_csv_file(path, table_format) for path in files}
        first_header = checked[files[0]][0]
        for path, (header, _) in checked.items():
            if header != first_header:
                raise BadCsvError(
                    f"'{path}' has the columns {header}, '{files[0]}' has {first_header}; "
                    "every file of a split needs the same header"
                )
        rows = sum(count for _, count in checked.values())
        logging.info(
            "Checked %d CSV file(s): %d data rows (%s)",
            len(files),
            rows,
            json.dumps(table_format.to_config()),
        )
        super().Do(input_dict, output_dict, exec_properties)
