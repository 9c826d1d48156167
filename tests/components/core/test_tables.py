"""Reading the taxi CSV saved the ways programs save tables: the header, the delimiter, missing cells.

The spec check, the strict file check, ExampleGen and the drift check read through `components.core.tables`;
here it meets each way of saving on 300 real taxi trips. ExampleGen's reading of the same files is in
tests/components/test_csv_files.py; a whole run on a spreadsheet's export in tests/e2e/test_pipeline_e2e.py.
"""

from __future__ import annotations

import pytest
import yaml

from components.core import tables
from components.core.sources import SourceError, read_header
from components.core.spec import SpecError, load_spec
from components.core.tables import CsvFormat
from tests.helpers.data import SAVED_AS, TAXI_SPEC, save_as

ROWS = 300


@pytest.fixture(scope="module")
def saved(tmp_path_factory, taxi_rows) -> dict:
    header, rows = taxi_rows
    folder = tmp_path_factory.mktemp("saved")
    return {name: save_as(folder / f"{name}.csv", header, rows[:ROWS], how) for name, how in SAVED_AS.items()}


@pytest.mark.parametrize("name", sorted(SAVED_AS))
def test_every_way_of_saving_gives_the_plain_header(saved, taxi_rows, name):
    header, _ = taxi_rows
    assert read_header(str(saved[name])) == header


@pytest.mark.parametrize("name", sorted(SAVED_AS))
def test_the_delimiter_is_detected(saved, name):
    path = str(saved[name])
    assert CsvFormat().delimiter_of(path) == SAVED_AS[name].delimiter
    assert CsvFormat(delimiter=SAVED_AS[name].delimiter).delimiter_of(path) == SAVED_AS[name].delimiter


def test_a_single_column_is_comma_separated(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("fare\n1.5\n2.5\n")
    assert CsvFormat().delimiter_of(str(path)) == ","
    assert read_header(str(path)) == ["fare"]


def test_missing_value_tokens_become_empty_cells_and_can_be_turned_off():
    cells = ["NA", " n/a ", "N/A", "null", "?", "NaN", "None", "5", "Nairobi", ""]
    assert CsvFormat().cells(cells) == ["", " n/a ", "", "", "", "", "", "5", "Nairobi", ""]
    assert CsvFormat(missing_values=()).cells(cells) == cells
    assert CsvFormat(missing_values=("-",)).cells(["-", "NA"]) == ["", "NA"]


def test_a_file_that_is_not_gzip_or_not_utf8_is_named(tmp_path):
    broken = tmp_path / "data.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08not really gzip")
    with pytest.raises(SourceError, match=r"data.csv.gz' cannot be read .*must be gzip"):
        read_header(str(broken))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("caf\u00e9,fare\n1,2\n".encode("latin-1"))
    with pytest.raises(SourceError, match="latin.csv' is not UTF-8 text; save the CSV as UTF-8"):
        read_header(str(latin))


def test_bytes_that_are_not_utf8_below_the_header_are_left_to_the_strict_check(tmp_path):
    """The spec check reads the header only: the strict file check then names the line (tests/components/
    test_checked_csv.py), rather than the spec check refusing the whole file without one."""
    path = tmp_path / "data.csv"
    path.write_bytes("fare;company\n1,5;ok\n2,0;Caf\u00e9\n".encode("latin-1"))
    assert read_header(str(path)) == ["fare", "company"]
    assert CsvFormat().delimiter_of(str(path)) == ";"


def write_spec(folder, source, **data) -> str:
    spec = yaml.safe_load(TAXI_SPEC.read_text())
    spec["data"] = {"source": str(source), **data}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_spreadsheets_export_passes_the_spec_check(saved, tmp_path):
    """Before: "column 'big_tipper' is not in the data" for `;` files, an invisible BOM in the message."""
    spec = load_spec(write_spec(tmp_path, saved["spreadsheet"]))
    assert spec.data.csv_format == CsvFormat()
    named = load_spec(write_spec(tmp_path, saved["semicolon"], delimiter=";", missing_values=["NA", "-"]))
    assert named.data.csv_format == CsvFormat(";", ("NA", "-"))


def test_a_wrong_delimiter_in_the_spec_is_named(saved, tmp_path):
    message = str(
        pytest.raises(SpecError, load_spec, write_spec(tmp_path, saved["plain"], delimiter=":")).value
    )
    assert "data.delimiter" in message
    # A delimiter the file does not use leaves one column: the label is then missing, and named.
    message = str(
        pytest.raises(SpecError, load_spec, write_spec(tmp_path, saved["plain"], delimiter=";")).value
    )
    assert "field 'label': column 'big_tipper' is not in the data" in message


def test_the_format_travels_as_config():
    chosen = CsvFormat("\t", ("NA",))
    assert CsvFormat.from_config(chosen.to_config()) == chosen
    assert CsvFormat.from_config(None) == CsvFormat() == CsvFormat.from_config({"delimiter": None})
    assert tables.describe_delimiter("\t") == "tab-separated"
