"""Replay: the shipped taxi trips cut into calendar quarters, oldest first, no trip lost."""

from __future__ import annotations

import csv

from pipelines.airflow.replay import cut_into_quarters, quarter_of
from tests.helpers.data import taxi_csv_path


def test_quarter_of_a_unix_timestamp():
    assert quarter_of("1357006500") == "2013Q1"  # 2013-01-01 02:15 UTC
    assert quarter_of("1483046100") == "2016Q4"


def test_taxi_trips_are_cut_into_ordered_quarters(tmp_path, taxi_rows):
    files = cut_into_quarters(taxi_csv_path(), tmp_path)
    names = [f.stem for f in files]
    assert names == sorted(names) and names[0] == "2013Q1" and names[-1] == "2016Q4"
    total = 0
    for path in files:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {quarter_of(row["trip_start_timestamp"]) for row in rows} == {path.stem}
        total += len(rows)
    assert total == len(taxi_rows[1])
