"""How Blueprint reads a CSV file the ways people save one: a UTF-8 byte-order mark, `,` `;` tab or `|`
between cells, LF, CRLF or CR line endings, quoted header names, gzip compression, and cells that spell a
missing value (`NA`, `N/A`, `null`, ...).

Python's csv module parses; this module opens the bytes as text, picks the delimiter and maps the
missing-value tokens. The spec check, the strict file check, ExampleGen and the drift check all read
through it, so a file means the same thing everywhere.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# What pandas' read_csv takes for missing by default, less its rarer spellings (#N/A, -NaN, <NA>, ...),
# plus "?" (UCI's tables).
DEFAULT_MISSING_VALUES = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?")
GZIP_MAGIC = b"\x1f\x8b"
SAMPLE_CHARS = 64 * 1024  # enough whole lines to tell the delimiter


# An ISO-8601 date, with a time (and anything after it: seconds' fractions, a time zone) or without.
ISO_DATE_TIME = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?.*)?"
SAMPLE_ROWS = 200  # data rows read to tell what a column holds


class TableError(ValueError):
    """A file that cannot be read as a table; the message names the file and what to do."""


class NotUtf8Error(TableError):
    """A file whose bytes are not UTF-8 text."""


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV's cells are separated (None: detected per file) and which cells mean "missing"."""

    delimiter: str | None = None
    missing_values: tuple[str, ...] = field(default=DEFAULT_MISSING_VALUES)

    def to_config(self) -> dict:
        return {"delimiter": self.delimiter, "missing_values": list(self.missing_values)}

    @classmethod
    def from_config(cls, config: dict | None) -> CsvFormat:
        config = config or {}
        missing = config.get("missing_values")
        return cls(config.get("delimiter"), DEFAULT_MISSING_VALUES if missing is None else tuple(missing))

    def delimiter_of(self, path: str) -> str:
        """The delimiter the spec names, else the one detected in the file's first lines."""
        return self.delimiter or detect_delimiter(read_sample(path))

    def cells(self, row: list[str]) -> list[str]:
        """A data row's cells with every missing-value token as an empty cell (what TFX reads as missing)."""
        missing = self.missing_values
        return ["" if cell.strip() in missing else cell for cell in row]


DEFAULT_FORMAT = CsvFormat()


def describe_delimiter(delimiter: str) -> str:
    return f"{DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated"


@contextmanager
def open_bytes(path: str) -> Iterator[BinaryIO]:
    """The file's bytes, gzip decompressed (told by its first bytes, whatever the file's name)."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
            yield unpacked


@contextmanager
def open_text(path: str) -> Iterator[TextIO]:
    """The file as UTF-8 text: gzip decompressed, a byte-order mark dropped, line endings left to the csv
    module (it takes LF, CRLF and CR alike)."""
    with open_bytes(path) as stream, io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as text:
        yield text


def read_sample(path: str) -> str:
    """The file's first whole lines (up to SAMPLE_CHARS bytes), to tell the delimiter. Bytes that are not
    UTF-8 are replaced here: the strict file check names them with their line."""
    try:
        with open_bytes(path) as handle:
            sample = handle.read(SAMPLE_CHARS).decode("utf-8-sig", errors="replace")
    except (OSError, EOFError) as error:
        raise TableError(f"'{path}' cannot be read ({error}); a .gz file must be gzip") from None
    end = max(sample.rfind("\n"), sample.rfind("\r"))
    return sample[: end + 1] if 0 < end < len(sample) - 1 else sample


def detect_delimiter(sample: str) -> str:
    """The delimiter among DELIMITERS that splits the sample's lines into equal numbers of cells (Python's
    csv.Sniffer); when that is ambiguous, the most frequent one in the header; `,` for a single column."""
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        header = sample.splitlines()[0] if sample else ""
        counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
        best = max(counts, key=counts.__getitem__)
        return best if counts[best] else ","


def reader(handle: TextIO, delimiter: str):
    """Strict CSV rows of an open file (a stray quote is an error, not a silent merge of lines)."""
    return csv.reader(handle, delimiter=delimiter, strict=True)


def read_header(path: str, delimiter: str) -> list[str]:
    """The header's column names (unquoted, surrounding spaces dropped); [] for an empty file. Only the
    header must be UTF-8 here; bytes further down are the strict file check's to name, with their line."""
    try:
        with (
            open_bytes(path) as stream,
            io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="") as handle,
        ):
            header = next(reader(handle, delimiter), None)
    except csv.Error as error:
        raise TableError(
            f"'{path}' line 1: the header is not valid CSV ({error}); check its quotes"
        ) from None
    except (OSError, EOFError) as error:
        raise TableError(f"'{path}' cannot be read ({error}); a .gz file must be gzip") from None
    if header and any("\ufffd" in name for name in header):
        raise NotUtf8Error(f"'{path}' is not UTF-8 text; save the CSV as UTF-8")
    return [name.strip() for name in header] if header else []


def sample_rows(path: str, table_format: CsvFormat) -> tuple[list[str], list[list[str]]]:
    """The header and up to SAMPLE_ROWS data rows (missing-value tokens as empty cells), read leniently:
    the strict file check names any bad line."""
    delimiter = table_format.delimiter_of(path)
    with (
        open_bytes(path) as stream,
        io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="") as handle,
    ):
        rows = csv.reader(handle, delimiter=delimiter)
        header = [name.strip() for name in next(rows, [])]
        return header, [table_format.cells(row) for row in itertools.islice(rows, SAMPLE_ROWS)]


def iso_date_time_columns(path: str, table_format: CsvFormat, candidates: list[str]) -> list[str]:
    """The candidate columns whose sampled cells are all ISO-8601 dates or date-times (and not empty)."""
    header, rows = sample_rows(path, table_format)
    pattern = re.compile(ISO_DATE_TIME)
    found = []
    for name in candidates:
        if name not in header:
            continue
        index = header.index(name)
        cells = [row[index].strip() for row in rows if index < len(row) and row[index].strip()]
        if cells and all(pattern.fullmatch(cell) for cell in cells):
            found.append(name)
    return found
