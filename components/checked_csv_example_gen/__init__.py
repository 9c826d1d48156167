"""CheckedCsvExampleGen: TFX's CsvExampleGen that names a malformed CSV file and line before ingesting."""

from components.checked_csv_example_gen.component import BadCsvError, CheckedCsvExampleGen

__all__ = ["BadCsvError", "CheckedCsvExampleGen"]
