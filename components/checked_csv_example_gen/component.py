"""CheckedCsvExampleGen component: TFX's file-based ExampleGen for CSV files as people save them."""

from __future__ import annotations

from google.protobuf import any_pb2, struct_pb2
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.checked_csv_example_gen.executor import BadCsvError, Executor
from components.core.tables import DEFAULT_FORMAT, CsvFormat

__all__ = ["BadCsvError", "CheckedCsvExampleGen"]


class CheckedCsvExampleGen(FileBasedExampleGen):
    """CsvExampleGen for real-world files: any of `,` `;` tab `|` (named, or detected per file), a byte-order
    mark, CRLF or CR line endings, quoted header names, gzip, and missing-value tokens such as `NA`; it
    refuses malformed rows, non-UTF-8 bytes and header-only files by name.

    Same spec, outputs, driver and span handling as TFX's CsvExampleGen; the CSV format travels in the
    standard `custom_config` (a Struct), so changing it re-runs ingestion.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        output_config: example_gen_pb2.Output,
        csv_format: CsvFormat = DEFAULT_FORMAT,
    ):
        values = struct_pb2.Struct()
        values.update(csv_format.to_config())
        packed = any_pb2.Any()
        packed.Pack(values)
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=example_gen_pb2.CustomConfig(custom_config=packed),
        )
