"""The landing zone: spans are numbered in order, land whole, and are never overwritten."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from components.core.spec import load_spec
from pipelines.workflow import landing
from tests.helpers.data import REPO_ROOT, TAXI_SPEC


@pytest.fixture
def spec(tmp_path):
    raw = yaml.safe_load(TAXI_SPEC.read_text())
    raw["data"]["source"] = "landing/span-{SPAN}/*.csv"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def test_spans_are_numbered_in_order_and_land_whole(spec, tmp_path, taxi_slice):
    assert landing.newest_span(spec) is None
    assert landing.land_span(spec, [taxi_slice]) == 1
    assert landing.land_span(spec, [taxi_slice]) == 2
    spans = landing.landed_spans(spec)
    assert list(spans) == [1, 2]
    assert spans[2] == [str(tmp_path / "landing" / "span-2" / "slice.csv")]
    assert not [p for p in (tmp_path / "landing").iterdir() if p.name.startswith(landing.INCOMING_PREFIX)]


def test_a_span_is_never_overwritten(spec, taxi_slice):
    landing.land_span(spec, [taxi_slice], span=5)
    with pytest.raises(landing.LandingError, match="span 5 has already landed"):
        landing.land_span(spec, [taxi_slice], span=5)


def test_a_failed_copy_leaves_no_span(spec, tmp_path, taxi_slice, monkeypatch):
    def failing_copy(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(landing.shutil, "copy2", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        landing.land_span(spec, [taxi_slice])
    assert landing.landed_spans(spec) == {}
    assert list((tmp_path / "landing").iterdir()) == []


def test_files_with_the_same_name_from_different_folders_all_land(spec, tmp_path, taxi_slice):
    first, second = tmp_path / "a" / "part.csv", tmp_path / "b" / "part.csv"
    for path, rows in ((first, 10), (second, 20)):
        path.parent.mkdir()
        path.write_text("".join(taxi_slice.read_text().splitlines(keepends=True)[: rows + 1]))
    span = landing.land_span(spec, [first, second])
    landed = {Path(f).name: Path(f).read_text() for f in landing.landed_spans(spec)[span]}
    assert landed == {"part.csv": first.read_text(), "part-2.csv": second.read_text()}


def test_two_landers_at_once_get_their_own_span_numbers(spec, tmp_path, taxi_slice):
    go = tmp_path / "go"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from components.core.spec import load_spec\n"
        "from pipelines.workflow import landing\n"
        "spec = load_spec(sys.argv[1])\n"
        "while not Path(sys.argv[3]).exists():\n"
        "    time.sleep(0.01)\n"
        "for _ in range(15):\n"
        "    landing.land_span(spec, [sys.argv[2]])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", script, str(tmp_path / "spec.yaml"), str(taxi_slice), str(go)]
    landers = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(1.0)
    go.touch()  # both start landing at once
    for lander in landers:
        assert lander.wait(timeout=120) == 0, lander.stderr.read()
    spans = landing.landed_spans(spec)
    assert list(spans) == list(range(1, 31))
    assert all(len(files) == 1 for files in spans.values())


def test_a_span_number_written_two_ways_is_refused_by_name(spec, tmp_path, taxi_slice):
    landing.land_span(spec, [taxi_slice])
    (tmp_path / "landing" / "span-01").mkdir()
    with pytest.raises(
        landing.LandingError, match=r"span 1 is in folder\(s\) span-01, span-1 .*no leading zeros"
    ):
        landing.landed_spans(spec)
    (tmp_path / "landing" / "span-1").rename(tmp_path / "landing" / "old")
    with pytest.raises(landing.LandingError, match="span-01 .* named 'span-1'"):
        landing.newest_span(spec)


def test_staging_left_by_a_killed_landing_is_removed_by_the_next(spec, tmp_path, taxi_slice):
    abandoned = tmp_path / "landing" / f"{landing.INCOMING_PREFIX}span-1-killed"
    abandoned.mkdir(parents=True)
    (abandoned / "half.csv").write_text("trip_miles,fa")
    assert landing.land_span(spec, [taxi_slice]) == 1
    assert not abandoned.exists()
    assert sorted(p.name for p in (tmp_path / "landing").iterdir()) == ["span-1"]


def test_a_file_the_spec_would_not_read_is_refused(spec, tmp_path, taxi_slice):
    text_file = tmp_path / "trips.txt"
    text_file.write_text(taxi_slice.read_text())
    with pytest.raises(
        landing.LandingError, match=r"trips.txt would land where ExampleGen does not read.*\*\.csv"
    ):
        landing.land_span(spec, [text_file])
    assert landing.landed_spans(spec) == {}


def test_missing_files_are_named(spec, tmp_path):
    with pytest.raises(landing.LandingError, match="nothing.csv"):
        landing.land_span(spec, [tmp_path / "nothing.csv"])
