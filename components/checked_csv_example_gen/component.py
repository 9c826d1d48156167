"""CheckedCsvExampleGen component: CsvExampleGen whose executor first checks each file is strict CSV."""

from tfx.components import CsvExampleGen
from tfx.dsl.components.base import executor_spec

from components.checked_csv_example_gen.executor import BadCsvError, Executor

__all__ = ["BadCsvError", "CheckedCsvExampleGen"]


class CheckedCsvExampleGen(CsvExampleGen):
    """CsvExampleGen that refuses malformed rows, non-UTF-8 bytes and header-only files by name.

    Same spec, outputs and span handling as CsvExampleGen; only the executor adds the check.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
