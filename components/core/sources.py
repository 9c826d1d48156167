"""Where a spec's data lives: paths, globs and files shipped inside installed packages; their headers."""

from __future__ import annotations

import csv
import glob
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from components.core import tables
from components.core.tables import DEFAULT_FORMAT, CsvFormat

PACKAGE_SCHEME = "pkg://"
_GLOB_CHARS = set("*?[")


class SourceError(ValueError):
    """A data source that cannot be read; the message says what to do."""


@dataclass(frozen=True)
class InputLocation:
    """A source split the way ExampleGen wants it: a base directory and a pattern under it."""

    base: str
    pattern: str


def resolve(source: str, relative_to: Path) -> str:
    """Absolute path or glob for `source`.

    `pkg://tfx/examples/...` names a file inside an installed Python package (the taxi demo data ships
    inside tfx); other relative paths are taken relative to the spec file's folder.
    """
    if source.startswith(PACKAGE_SCHEME):
        package, _, inner = source[len(PACKAGE_SCHEME) :].partition("/")
        found = importlib.util.find_spec(package) if package else None
        if found is None or not found.submodule_search_locations:
            raise SourceError(f"package '{package}' in '{source}' is not installed")
        return str(Path(list(found.submodule_search_locations)[0]) / inner)
    path = Path(os.path.expanduser(source))
    return str(path if path.is_absolute() else (relative_to / path).resolve())


def glob_files(pattern: str) -> list[str]:
    return sorted(f for f in glob.glob(pattern) if os.path.isfile(f))


def matching_files(pattern: str) -> list[str]:
    files = glob_files(pattern)
    if not files:
        raise SourceError(f"no file matches '{pattern}'; check the path (relative to the spec file)")
    return files


def read_header(
    pattern: str, table_format: CsvFormat = DEFAULT_FORMAT, file_format: str = "csv"
) -> list[str]:
    """The columns shared by every file the pattern matches: a CSV's header, a Parquet file's schema,
    the features of a TFRecord file's first tf.Example."""
    files = matching_files(pattern)
    read = {"csv": lambda path: _header_of(path, table_format), "parquet": _parquet_columns}.get(
        file_format, _tfrecord_columns
    )
    header = read(files[0])
    for other in files[1:]:
        if read(other) != header:
            raise SourceError(f"'{other}' has other columns than '{files[0]}'; all files need one header")
    return header


def _header_of(path: str, table_format: CsvFormat) -> list[str]:
    try:
        header = tables.read_header(path, table_format.delimiter_of(path))
    except tables.TableError as error:
        raise SourceError(str(error)) from None
    if not header or not any(header):
        raise SourceError(f"'{path}' is empty; a CSV needs a header row and data rows")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise SourceError(f"'{path}' repeats the column(s) {', '.join(duplicates)}; names must be unique")
    return header


def _parquet_columns(path: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not Parquet
        raise SourceError(f"'{path}' is not a Parquet file ({error}); check data.format") from None


def _tfrecord_columns(path: str) -> list[str]:
    """The features of the first tf.Example in a TFRecord file (gzip-compressed when it ends in .gz)."""
    import tensorflow as tf

    compression = "GZIP" if path.endswith(".gz") else ""
    try:
        first = next(iter(tf.data.TFRecordDataset(path, compression_type=compression).take(1)), None)
        if first is None:
            raise SourceError(f"'{path}' holds no record; a TFRecord source needs tf.Examples")
        return sorted(tf.train.Example.FromString(first.numpy()).features.feature)
    except (tf.errors.OpError, ValueError) as error:
        raise SourceError(
            f"'{path}' is not a TFRecord file of tf.Examples ({type(error).__name__}); check data.format"
        ) from None


def date_time_columns(
    path: str, table_format: CsvFormat, file_format: str, candidates: list[str]
) -> list[str]:
    """The candidates that hold date-times: ISO-8601 text in every sampled CSV cell, or a Parquet
    timestamp or date type."""
    if file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        return [
            name
            for name in candidates
            if name in schema.names
            and (pa.types.is_timestamp(schema.field(name).type) or pa.types.is_date(schema.field(name).type))
        ]
    try:
        return tables.iso_date_time_columns(path, table_format, candidates)
    except (tables.TableError, OSError, EOFError):
        return []  # the strict file check names what is wrong with the file


def read_table(path: Path | str) -> tuple[list[str], list[dict[str, str]]]:
    """A UTF-8 CSV's header and rows, every cell as text."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def write_table(path: Path, header: list[str], rows: Iterable[dict[str, str]]) -> Path:
    """Rows as a UTF-8 CSV with `header` (the landing zone's and the replay's files, test tables)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def input_location(pattern: str) -> InputLocation:
    """Splits an absolute path or glob into the longest plain directory and the rest."""
    parts = Path(pattern).parts
    plain = 0
    while plain < len(parts) - 1 and not (_GLOB_CHARS & set(parts[plain])) and "{" not in parts[plain]:
        plain += 1
    return InputLocation(base=str(Path(*parts[:plain])), pattern=str(Path(*parts[plain:])))
