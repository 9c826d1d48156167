"""The bad-input catalogue: each kind of bad data a user can hand the pipeline, and what it does.

The session's served run (tests/conftest.py::served_taxi: 2,500 real taxi trips with one column the
spec does not know) serves a model. Then each bad input either stops the run before training, with a
message naming the file or column and the problem, or proceeds with a recorded warning. On a stop
nothing is pushed and every file under the serving folder is byte-for-byte what it was.

Catalogued elsewhere, with the same assertions: text in a numeric column and rows without a label
(tests/e2e/test_pipeline_e2e.py), a category never seen in training and a span folder with no files
(tests/e2e/test_airflow_dags.py), the spec loader's refusals (tests/components/core/test_spec.py and
test_spec_fuzz.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.core.sources import write_table
from components.core.spec import load_spec
from pipelines.ops.cli import RunFailed, run_training
from tests.helpers.pipeline_runs import (
    EXTRA_COLUMN,
    SERVED_ROWS,
    cli_run,
    serving_snapshot,
    versions,
    write_taxi_spec,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("served-taxi")]


@pytest.fixture(scope="module")
def trips(taxi_rows) -> tuple[list[str], list[dict[str, str]]]:
    header, rows = taxi_rows
    return header, [dict(row) for row in rows[:SERVED_ROWS]]


@pytest.fixture(scope="module")
def served(served_taxi) -> dict:
    """The first run, through the CLI, on trips with an extra free-text column the spec does not name."""
    return {
        "spec": served_taxi.spec,
        "paths": served_taxi.paths,
        "stdout": served_taxi.stdout,
        "versions": served_taxi.versions,
    }


def _stopped_run(served: dict, source: Path, **spec_changes) -> str:
    """Runs the pipeline on `source` against the served home; returns why it stopped."""
    spec = load_spec(write_taxi_spec(source.parent / "spec", source, **spec_changes))
    before = serving_snapshot(served["paths"].serving_dir)
    with pytest.raises(RunFailed) as failure:
        run_training(spec, served["paths"].home)
    assert serving_snapshot(served["paths"].serving_dir) == before, "the served model changed"
    assert versions(served["paths"].serving_dir) == served["versions"], "a version was pushed"
    return str(failure.value)


def _refused_by_cli(served: dict, source: Path) -> str:
    """Runs the CLI on `source`; it must refuse before the pipeline starts. Returns its stderr."""
    before = serving_snapshot(served["paths"].serving_dir)
    done = cli_run(write_taxi_spec(source.parent / "spec", source), served["paths"].home)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert serving_snapshot(served["paths"].serving_dir) == before
    return done.stderr


def test_an_extra_column_is_ignored_with_a_recorded_warning(served):
    assert len(served["versions"]) == 1, "the run proceeded and pushed"
    assert f"warning: column(s) {EXTRA_COLUMN} are in the data" in served["stdout"]
    report_line = next(line for line in served["stdout"].splitlines() if "report:" in line)
    report = json.loads((Path(report_line.split("report:")[1].strip()).parent / "report.json").read_text())
    assert report["data"]["unused_columns"] == [EXTRA_COLUMN]
    # The simple-model baseline reads the taxi's text categories (payment type, company) as the gate gets
    # them (bytes): the trees reach the network's league only with them.
    simple = next(line for line in served["stdout"].splitlines() if "simple model:" in line)
    assert float(simple.split("gradient-boosted trees: ")[1].split()[0]) > 0.85, simple
    assert EXTRA_COLUMN not in {feature["name"] for feature in report["data"]["features"]}


def test_a_malformed_row_is_named_by_file_and_line(served, trips, tmp_path):
    header, rows = trips
    source = write_table(tmp_path / "data.csv", header, rows[:800])
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[41] = lines[41].rstrip("\n") + ",surplus,fields\n"
    source.write_text("".join(lines), encoding="utf-8")
    message = _stopped_run(served, source)
    assert message.startswith("CsvExampleGen failed")
    assert f"'{source}' line 42: {len(header) + 2} fields where the header has {len(header)}" in message


def test_a_missing_feature_column_is_refused_before_the_run(served, trips, tmp_path):
    header, rows = trips
    kept = [column for column in header if column != "trip_miles"]
    source = write_table(tmp_path / "data.csv", kept, [{c: row[c] for c in kept} for row in rows[:500]])
    stderr = _refused_by_cli(served, source)
    assert "field 'features': column 'trip_miles' is not in the data" in stderr


def test_an_empty_file_is_refused_before_the_run(served, tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("")
    stderr = _refused_by_cli(served, source)
    assert f"'{source}' is empty; a CSV needs a header row and data rows" in stderr


def test_a_header_without_rows_stops_at_ingestion(served, trips, tmp_path):
    header, _ = trips
    source = write_table(tmp_path / "data.csv", header, [])
    message = _stopped_run(served, source)
    assert f"'{source}' has a header but no data rows" in message


def test_bytes_that_are_not_utf8_are_named_by_line(served, trips, tmp_path):
    header, rows = trips
    source = write_table(tmp_path / "data.csv", header, rows[:800])
    lines = source.read_bytes().splitlines(keepends=True)
    lines[300] = lines[300].replace(b"Credit Card", b"Cr\xe9dit Card").replace(b"Cash", b"C\xe0sh")
    source.write_bytes(b"".join(lines))
    message = _stopped_run(served, source)
    assert f"'{source}' line 301: bytes that are not UTF-8 text; save the file as UTF-8" in message


def test_a_feature_with_no_values_at_all_stops_before_training(served, trips, tmp_path):
    """The spec names `company` as a feature; blank in every row, it has nothing to learn from. (A spec
    that leaves the features to Blueprint leaves such a column out instead, and says so.)"""
    header, rows = trips
    source = write_table(tmp_path / "data.csv", header, [dict(row, company="") for row in rows[:800]])
    message = _stopped_run(served, source)
    assert message.startswith("SchemaGen failed")
    assert (
        "column 'company' has no values in the training data; fill it or drop it from the spec's" in message
    )


def test_nan_and_infinite_numbers_stop_before_training(served, trips, tmp_path):
    """`nan` is a missing value by default (`data.missing_values`, as pandas reads it); a spec whose
    tokens leave it out makes it the float NaN, which would poison the mean: refused, as infinity is."""
    header, rows = trips
    broken = [dict(row) for row in rows[:800]]
    for row in broken[::40]:
        row["trip_miles"] = "nan"
    for row in broken[5::40]:
        row["fare"] = "inf"
    source = write_table(tmp_path / "data.csv", header, broken)
    message = _stopped_run(served, source, data={"source": str(source), "missing_values": ["", "NA"]})
    assert message.startswith("ExampleValidator failed")
    assert "column 'trip_miles': Float feature has NaN values" in message
    assert "column 'fare': Float feature has Inf values" in message
    assert "nothing is trained or pushed" in message


def test_a_constant_label_stops_before_training(served, trips, tmp_path):
    header, rows = trips
    source = write_table(tmp_path / "data.csv", header, [dict(row, big_tipper="0") for row in rows[:800]])
    message = _stopped_run(served, source)
    assert message.startswith("SchemaGen failed")
    assert "label column 'big_tipper' holds the single value 0 in every training row" in message
