"""The monitoring folder's files after a kill mid-write: a cut-short leftover is treated as absent, and new
files are written whole (a temporary file and a rename)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from components.core.files import replace_file
from pipelines.workflow.monitoring import read_cached_statistics, reports


def test_a_cut_short_drift_report_is_left_out_and_the_others_are_read(tmp_path):
    replace_file(tmp_path / "span-0001-1.json", json.dumps({"span": 1, "decision": "no drift"}))
    full = json.dumps({"span": 2, "decision": "drift"})
    (tmp_path / "span-0002-2.json").write_text(full[: len(full) // 2])  # what a kill mid-write left before
    replace_file(tmp_path / "span-0003-3.json", json.dumps({"span": 3, "decision": "no drift"}))
    assert [report["span"] for report in reports(tmp_path)] == [1, 3]
    assert reports(tmp_path, span=2) == []


def test_cut_short_or_empty_cached_statistics_are_computed_again(tmp_path):
    stats = tfdv.generate_statistics_from_dataframe(
        pd.DataFrame({"fare": [4.5, 6.0, 7.25], "company": list("abc")})
    )
    whole = stats.SerializeToString()
    cache = tmp_path / "reference-1.pb"
    assert read_cached_statistics(cache) is None  # absent
    replace_file(cache, whole)
    assert read_cached_statistics(cache) == stats
    cache.write_bytes(whole[: len(whole) // 2])
    assert read_cached_statistics(cache) is None
    cache.write_bytes(b"")
    assert read_cached_statistics(cache) is None


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "current.json"
    replace_file(path, '{"version": 1}')
    with pytest.raises(TypeError):
        replace_file(path, 42)  # neither text nor bytes: the write fails midway
    assert path.read_text() == '{"version": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.json"]
