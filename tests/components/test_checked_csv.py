"""CheckedCsvExampleGen's file check on small files: what it accepts and how it names what it refuses.

The pipeline-level behaviour (the run stops in CsvExampleGen, nothing pushed) is in
tests/e2e/test_bad_input.py.
"""

from __future__ import annotations

import pytest

from components.checked_csv_example_gen.reader import BadCsvError, check_csv_file


def write(tmp_path, content: bytes):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    return str(path)


def test_rows_are_counted_blank_lines_skipped_and_quoted_commas_kept(tmp_path):
    path = write(tmp_path, b'fare,company\n1.5,"Cab, Inc."\n\n2.0,"Multi\nline"\n3.0,\n')
    assert check_csv_file(path) == (["fare", "company"], 3)


def test_an_unclosed_quote_is_named_with_its_line(tmp_path):
    path = write(tmp_path, b'fare,company\n1.5,ok\n2.0,"never closed\n3.0,ok\n')
    with pytest.raises(BadCsvError, match=r"line \d+: not valid CSV .*check the quotes"):
        check_csv_file(path)


def test_a_short_row_is_named_with_its_line(tmp_path):
    path = write(tmp_path, b"fare,company,tips\n1.5,a,0\n2.0,b\n")
    with pytest.raises(BadCsvError, match="line 3: 2 fields where the header has 3"):
        check_csv_file(path)


def test_latin1_bytes_are_named_with_their_line(tmp_path):
    path = write(tmp_path, "fare,company\n1.5,ok\n2.0,Caf\u00e9\n".encode("latin-1"))
    with pytest.raises(BadCsvError, match="line 3: bytes that are not UTF-8 text"):
        check_csv_file(path)


@pytest.mark.parametrize("content", [b"", b"\n", b" , \n"])
def test_an_empty_file_or_blank_header_is_refused(tmp_path, content):
    with pytest.raises(BadCsvError, match="is empty"):
        check_csv_file(write(tmp_path, content))


def test_a_header_alone_is_refused(tmp_path):
    with pytest.raises(BadCsvError, match="has a header but no data rows"):
        check_csv_file(write(tmp_path, b"fare,company\n\n"))
