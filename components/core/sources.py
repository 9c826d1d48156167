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


def read_header(pattern: str, table_format: CsvFormat = DEFAULT_FORMAT) -> list[str]:
    """The CSV header shared by every file the pattern matches."""
    files = matching_files(pattern)
    header = _header_of(files[0], table_format)
    for other in files[1:]:
        if _header_of(other, table_format) != header:
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
